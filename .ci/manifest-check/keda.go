package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
)

// kafkaTriggerKeys are the trigger metadata keys KEDA's kafka scaler reads
// (the `keda:"name=..."` tags of kafkaMetadata in pkg/scalers/kafka_scaler.go
// of KEDA v2.21.0, the version in go.mod), with the kind of value each
// takes. The metadata is a map[string]string in the API type, so a
// misspelled key ("lagTreshold") would pass the strict decoding and be
// ignored by KEDA; this catches it.
var kafkaTriggerKeys = map[string]string{
	"bootstrapServers":                   "string",
	"consumerGroup":                      "string",
	"topic":                              "string",
	"partitionLimitation":                "string",
	"lagThreshold":                       "int",
	"activationLagThreshold":             "int",
	"offsetResetPolicy":                  "latest|earliest",
	"allowIdleConsumers":                 "bool",
	"excludePersistentLag":               "bool",
	"scaleToZeroOnInvalidOffset":         "bool",
	"limitToPartitionsWithLag":           "bool",
	"ensureEvenDistributionOfPartitions": "bool",
	"fullMetadata":                       "bool",
	"version":                            "string",
	"tls":                                "enable|disable",
	"unsafeSsl":                          "bool",
	"sasl":                               "none|plaintext|scram_sha256|scram_sha512|oauthbearer|gssapi",
	"saslTokenProvider":                  "bearer|aws_msk_iam",
	"awsRegion":                          "string",
}

// checkScaledObject checks the kafka triggers' metadata keys and values,
// and that each names its brokers, group and topic.
func checkScaledObject(obj object) []error {
	so, ok := obj.(*kedav1alpha1.ScaledObject)
	if !ok {
		return nil
	}
	var errs []error
	if so.Spec.ScaleTargetRef == nil || so.Spec.ScaleTargetRef.Name == "" {
		errs = append(errs, fmt.Errorf("spec.scaleTargetRef.name is missing"))
	}
	if len(so.Spec.Triggers) == 0 {
		errs = append(errs, fmt.Errorf("spec.triggers is empty"))
	}
	for i, trigger := range so.Spec.Triggers {
		if trigger.Type != "kafka" {
			continue
		}
		where := fmt.Sprintf("spec.triggers[%d].metadata", i)
		keys := make([]string, 0, len(trigger.Metadata))
		for k := range trigger.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			kind, known := kafkaTriggerKeys[k]
			if !known {
				errs = append(errs, fmt.Errorf("%s: %q is not a key of KEDA's kafka scaler", where, k))
				continue
			}
			if err := checkTriggerValue(kind, trigger.Metadata[k]); err != nil {
				errs = append(errs, fmt.Errorf("%s.%s: %w", where, k, err))
			}
		}
		for _, k := range []string{"bootstrapServers", "consumerGroup", "topic"} {
			if trigger.Metadata[k] == "" {
				errs = append(errs, fmt.Errorf("%s.%s is missing or empty", where, k))
			}
		}
	}
	return errs
}

func checkTriggerValue(kind, value string) error {
	switch kind {
	case "string":
		return nil
	case "int":
		if _, err := strconv.ParseInt(value, 10, 64); err != nil {
			return fmt.Errorf("%q is not an integer", value)
		}
	case "bool":
		if _, err := strconv.ParseBool(value); err != nil {
			return fmt.Errorf("%q is not a boolean", value)
		}
	default:
		for _, allowed := range strings.Split(kind, "|") {
			if value == allowed {
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", value, kind)
	}
	return nil
}

// checkReferences checks what spans documents of one stream: a
// ScaledObject's target and TriggerAuthentications exist in it, and the
// StatefulSet it scales leaves spec.replicas to the HPA (a rendered
// replicas would put the count back at every `helm upgrade`, fighting
// KEDA).
func checkReferences(objs []object) []error {
	statefulSets := map[string]*appsv1.StatefulSet{}
	auths := map[string]bool{}
	for _, obj := range objs {
		switch o := obj.(type) {
		case *appsv1.StatefulSet:
			statefulSets[o.Name] = o
		case *kedav1alpha1.TriggerAuthentication:
			auths[o.Name] = true
		}
	}
	var errs []error
	for _, obj := range objs {
		so, ok := obj.(*kedav1alpha1.ScaledObject)
		if !ok || so.Spec.ScaleTargetRef == nil {
			continue
		}
		ref := so.Spec.ScaleTargetRef
		id := "ScaledObject/" + so.Name
		if ref.Kind != "StatefulSet" || ref.APIVersion != "apps/v1" {
			errs = append(errs, fmt.Errorf("%s: scales %s %s, not the chart's apps/v1 StatefulSet", id, ref.APIVersion, ref.Kind))
		} else if sts, found := statefulSets[ref.Name]; !found {
			errs = append(errs, fmt.Errorf("%s: scales StatefulSet %q, which is not in the manifests", id, ref.Name))
		} else if sts.Spec.Replicas != nil {
			errs = append(errs, fmt.Errorf("%s: StatefulSet %q sets spec.replicas (%d), which would fight the HPA at every upgrade", id, ref.Name, *sts.Spec.Replicas))
		}
		for i, trigger := range so.Spec.Triggers {
			if trigger.AuthenticationRef == nil {
				continue
			}
			kind := trigger.AuthenticationRef.Kind
			if (kind == "" || kind == "TriggerAuthentication") && !auths[trigger.AuthenticationRef.Name] {
				errs = append(errs, fmt.Errorf("%s: spec.triggers[%d].authenticationRef names TriggerAuthentication %q, which is not in the manifests", id, i, trigger.AuthenticationRef.Name))
			}
		}
	}
	return errs
}
