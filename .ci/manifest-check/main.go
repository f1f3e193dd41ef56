// Command manifest-check reads a multi-document YAML stream of Kubernetes
// manifests (the output of `helm template`) and decodes every document
// strictly into the Go type of its apiVersion and kind, as the API server
// does with fieldValidation=Strict: an unknown or misspelled field, a field
// in the wrong case, a duplicated field or a value of the wrong type fails
// with its path named. A kind it does not know fails too, so a new kind in
// the chart means adding its type here.
//
// It also checks what the API server (or KEDA) would reject although the
// types accept it: a missing or invalid name, invalid labels, and a workload or
// disruption-budget selector that does not match the pod template labels;
// that ConfigMap entries named *.toml or *.json parse as such (the rendered
// rivulet.toml, the Grafana dashboard); that the PromQL of the alert rules
// and of the dashboard's panels parses; and, with -rivulet-defaults, that
// every key of a rendered rivulet.toml is one the rivulet binary knows;
// that a KEDA ScaledObject's kafka triggers use only keys KEDA's kafka
// scaler knows, with values of the right kind; and, across the documents of
// one file, that a ScaledObject's target and TriggerAuthentications are
// there and that the StatefulSet it scales leaves spec.replicas to the HPA.
//
// Usage: manifest-check [-rivulet-defaults config/default.toml] [FILE...]
// (standard input when no file is given).
// Exit status 1 when any document fails; every failure is printed.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is what every known kind's type offers: its metadata.
type object interface {
	GetName() string
	GetLabels() map[string]string
}

// kinds maps "apiVersion kind" to a constructor of its type.
var kinds = map[string]func() object{
	"v1 ConfigMap":                             func() object { return &corev1.ConfigMap{} },
	"v1 Pod":                                   func() object { return &corev1.Pod{} },
	"v1 Secret":                                func() object { return &corev1.Secret{} },
	"v1 Service":                               func() object { return &corev1.Service{} },
	"v1 ServiceAccount":                        func() object { return &corev1.ServiceAccount{} },
	"apps/v1 Deployment":                       func() object { return &appsv1.Deployment{} },
	"apps/v1 StatefulSet":                      func() object { return &appsv1.StatefulSet{} },
	"policy/v1 PodDisruptionBudget":            func() object { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1 NetworkPolicy":       func() object { return &networkingv1.NetworkPolicy{} },
	"rbac.authorization.k8s.io/v1 Role":        func() object { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1 RoleBinding": func() object { return &rbacv1.RoleBinding{} },
	"monitoring.coreos.com/v1 ServiceMonitor":  func() object { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1 PodMonitor":      func() object { return &monitoringv1.PodMonitor{} },
	"monitoring.coreos.com/v1 PrometheusRule":  func() object { return &monitoringv1.PrometheusRule{} },
	"keda.sh/v1alpha1 ScaledObject":            func() object { return &kedav1alpha1.ScaledObject{} },
	"keda.sh/v1alpha1 TriggerAuthentication":   func() object { return &kedav1alpha1.TriggerAuthentication{} },
}

// sourceComment is the line `helm template` puts at the top of each document.
var sourceComment = regexp.MustCompile(`(?m)^# Source: (.+)$`)

var (
	rivuletDefaults = flag.String("rivulet-defaults", "", "config/default.toml: check that every key of a ConfigMap's rivulet.toml is one the binary knows")
	rivuletKeys     *configKeys
)

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: manifest-check [-rivulet-defaults config/default.toml] [FILE...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *rivuletDefaults != "" {
		keys, err := loadConfigKeys(*rivuletDefaults)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", *rivuletDefaults, err)
			os.Exit(2)
		}
		rivuletKeys = keys
	}
	inputs := flag.Args()
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	checked, failed := 0, 0
	for _, input := range inputs {
		docs, err := readDocuments(input)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", input, err)
			os.Exit(2)
		}
		var objs []object
		for i, doc := range docs {
			where := fmt.Sprintf("%s: document %d", input, i+1)
			if m := sourceComment.FindSubmatch(doc); m != nil {
				where += " (" + string(m[1]) + ")"
			}
			id, obj, errs := check(doc)
			if id == "" {
				continue // only comments or whitespace
			}
			checked++
			if obj != nil {
				objs = append(objs, obj)
			}
			if len(errs) > 0 {
				failed++
				for _, e := range errs {
					fmt.Fprintf(os.Stderr, "FAIL %s %s: %v\n", where, id, e)
				}
			}
		}
		if errs := checkReferences(objs); len(errs) > 0 {
			failed++
			for _, e := range errs {
				fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", input, e)
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d manifests failed\n", failed, checked)
		os.Exit(1)
	}
	if checked == 0 {
		fmt.Fprintln(os.Stderr, "no manifests found")
		os.Exit(1)
	}
	fmt.Printf("%d manifests match their Kubernetes API types\n", checked)
}

func readDocuments(input string) ([][]byte, error) {
	var r io.Reader = os.Stdin
	if input != "-" {
		f, err := os.Open(input)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
}

// check decodes one document. It returns "kind/name" (empty for an empty
// document), the decoded object (nil when it could not be decoded) and
// what is wrong with it.
func check(doc []byte) (string, object, []error) {
	// YAMLToJSONStrict rejects duplicate keys, which plain YAML allows.
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return "?", nil, []error{err}
	}
	if len(bytes.TrimSpace(data)) == 0 || string(bytes.TrimSpace(data)) == "null" {
		return "", nil, nil
	}
	var head metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(data, &head); err != nil {
		return "?", nil, []error{fmt.Errorf("not a Kubernetes object: %w", err)}
	}
	id := head.Kind + "/?"
	newObject, ok := kinds[head.APIVersion+" "+head.Kind]
	if !ok {
		return id, nil, []error{fmt.Errorf("unknown kind %q of apiVersion %q (add its type to .ci/manifest-check if it is meant)", head.Kind, head.APIVersion)}
	}
	obj := newObject()
	// The API server's own strict decoder: unlike encoding/json (under
	// sigs.k8s.io/yaml.UnmarshalStrict) it matches field names case
	// sensitively, as the server does, and names each unknown field by its
	// full path (spec.template.spec.containers[0].securityContxt).
	strictErrs, err := kjson.UnmarshalStrict(data, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return id, nil, []error{err}
	}
	id = head.Kind + "/" + obj.GetName()
	errs := strictErrs
	errs = append(errs, checkMetadata(head.Kind, obj)...)
	errs = append(errs, checkSelector(obj)...)
	errs = append(errs, checkConfigMapData(obj)...)
	errs = append(errs, checkRuleExpressions(obj)...)
	errs = append(errs, checkScaledObject(obj)...)
	return id, obj, errs
}

func checkMetadata(kind string, obj object) []error {
	var errs []error
	name := obj.GetName()
	if name == "" {
		return []error{errors.New("metadata.name is empty")}
	}
	// Services and StatefulSets name DNS labels; the rest DNS subdomains.
	nameCheck := validation.IsDNS1123Subdomain
	if kind == "Service" || kind == "StatefulSet" {
		nameCheck = validation.IsDNS1123Label
	}
	for _, msg := range nameCheck(name) {
		errs = append(errs, fmt.Errorf("metadata.name %q: %s", name, msg))
	}
	for k, v := range obj.GetLabels() {
		for _, msg := range validation.IsQualifiedName(k) {
			errs = append(errs, fmt.Errorf("label key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			errs = append(errs, fmt.Errorf("label %s value %q: %s", k, v, msg))
		}
	}
	return errs
}

// checkSelector fails a workload whose selector does not select its own
// pod template, which the API server rejects.
func checkSelector(obj object) []error {
	var selector *metav1.LabelSelector
	var podLabels map[string]string
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		selector, podLabels = o.Spec.Selector, o.Spec.Template.Labels
	case *appsv1.Deployment:
		selector, podLabels = o.Spec.Selector, o.Spec.Template.Labels
	case *policyv1.PodDisruptionBudget:
		if o.Spec.Selector == nil {
			return []error{errors.New("spec.selector is missing: the budget would cover no pod")}
		}
		return nil
	default:
		return nil
	}
	if selector == nil {
		return []error{errors.New("spec.selector is missing")}
	}
	s, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return []error{fmt.Errorf("spec.selector: %w", err)}
	}
	if s.Empty() || !s.Matches(labels.Set(podLabels)) {
		return []error{fmt.Errorf("spec.selector %s does not match the pod template labels %s",
			s, strings.TrimSpace(labels.Set(podLabels).String()))}
	}
	return nil
}

// checkConfigMapData parses the ConfigMap entries whose names say they are
// TOML or JSON.
func checkConfigMapData(obj object) []error {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return nil
	}
	var errs []error
	for name, text := range cm.Data {
		switch {
		case strings.HasSuffix(name, ".toml"):
			var v map[string]any
			if _, err := toml.Decode(text, &v); err != nil {
				errs = append(errs, fmt.Errorf("data[%s] is not valid TOML: %w", name, err))
			}
			errs = append(errs, checkConfigKeys(name, text)...)
		case strings.HasSuffix(name, ".json"):
			var v any
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				errs = append(errs, fmt.Errorf("data[%s] is not valid JSON: %w", name, err))
				continue
			}
			if dashboard, ok := v.(map[string]any); ok {
				errs = append(errs, checkPanelQueries(fmt.Sprintf("data[%s]", name), dashboard["panels"])...)
			}
		}
	}
	return errs
}

var promQL = parser.NewParser(parser.Options{})

func checkRuleExpressions(obj object) []error {
	rule, ok := obj.(*monitoringv1.PrometheusRule)
	if !ok {
		return nil
	}
	var errs []error
	for g, group := range rule.Spec.Groups {
		for r, rule := range group.Rules {
			if _, err := promQL.ParseExpr(rule.Expr.String()); err != nil {
				errs = append(errs, fmt.Errorf("spec.groups[%d].rules[%d].expr (%s%s): %w", g, r, rule.Alert, rule.Record, err))
			}
		}
	}
	return errs
}

// grafanaVariable matches $name, ${name} and ${name:format}, which Grafana
// replaces before a query reaches Prometheus.
var grafanaVariable = regexp.MustCompile(`\$(__[a-z_]+|\{[^}]+\}|[A-Za-z_][A-Za-z0-9_]*)`)

// checkPanelQueries parses the PromQL of a Grafana dashboard's panels (and
// of the panels inside rows), with Grafana's variables replaced by sample
// values: a duration for the interval variables, a word for the others.
func checkPanelQueries(where string, panels any) []error {
	list, _ := panels.([]any)
	var errs []error
	for _, p := range list {
		panel, _ := p.(map[string]any)
		title, _ := panel["title"].(string)
		targets, _ := panel["targets"].([]any)
		for _, t := range targets {
			target, _ := t.(map[string]any)
			expr, _ := target["expr"].(string)
			if expr == "" {
				continue
			}
			expr = grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
				if strings.Contains(v, "interval") || strings.Contains(v, "range") {
					return "5m"
				}
				return "x"
			})
			if _, err := promQL.ParseExpr(expr); err != nil {
				errs = append(errs, fmt.Errorf("%s: panel %q: %w", where, title, err))
			}
		}
		errs = append(errs, checkPanelQueries(where, panel["panels"])...)
	}
	return errs
}
