{{/*
Names and labels. The fullname is the release name, suffixed with the chart
name unless the release name already contains it; it names the StatefulSet,
so pods are <fullname>-0, <fullname>-1, ... and that is their instance id.
*/}}
{{- define "rivulet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rivulet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "rivulet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rivulet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rivulet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rivulet.labels" -}}
helm.sh/chart: {{ include "rivulet.chart" . }}
{{ include "rivulet.selectorLabels" . }}
app.kubernetes.io/version: {{ include "rivulet.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "rivulet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rivulet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rivulet.metricsServiceName" -}}
{{- printf "%s-metrics" (include "rivulet.fullname" .) }}
{{- end }}

{{- define "rivulet.headlessServiceName" -}}
{{- printf "%s-headless" (include "rivulet.fullname" .) }}
{{- end }}

{{- define "rivulet.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{- define "rivulet.image" -}}
{{- if not .Values.image.repository }}
{{- fail "image.repository is required: the image of your rivulet binary (see the chart README)" }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "rivulet.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
The config keys the chart sets itself, because the pod spec depends on them.
*/}}
{{- define "rivulet.shutdownTimeoutMs" -}}
{{- int64 (default 30000 .Values.config.shutdown_timeout_ms) }}
{{- end }}

{{- define "rivulet.terminationGracePeriodSeconds" -}}
{{- $ms := include "rivulet.shutdownTimeoutMs" . | int64 }}
{{- add (div (add $ms 999) 1000) .Values.terminationGraceMarginSeconds }}
{{- end }}

{{/*
The config as the TOML file the binary reads: the values' `config` map plus
state_dir, http.listen and shutdown_timeout_ms, which the chart owns.
*/}}
{{- define "rivulet.configMap" -}}
{{- $config := deepCopy .Values.config }}
{{- if hasKey $config "state_dir" }}
{{- fail "config.state_dir is set by the chart (persistence.mountPath); remove it from config" }}
{{- end }}
{{- if hasKey $config "instance_id" }}
{{- fail "config.instance_id is set by the chart (the pod name); remove it from config" }}
{{- end }}
{{- $http := default dict (get $config "http") }}
{{- if hasKey $http "listen" }}
{{- fail "config.http.listen is set by the chart (httpPort); remove it from config" }}
{{- end }}
{{- if hasKey $http "advertised_address" }}
{{- fail "config.http.advertised_address is set by the chart (advertisedAddress); remove it from config" }}
{{- end }}
{{- $_ := set $http "listen" (printf "0.0.0.0:%d" (int .Values.httpPort)) }}
{{- $_ := set $config "http" $http }}
{{- $_ := set $config "state_dir" .Values.persistence.mountPath }}
{{- $_ := set $config "shutdown_timeout_ms" (include "rivulet.shutdownTimeoutMs" . | int64) }}
{{- toYaml $config }}
{{- end }}

{{/*
TOML rendering. Keys and strings are written as JSON strings, which are
valid TOML basic strings (TOML accepts JSON's escapes); a key that is not a
bare key (librdkafka's "session.timeout.ms") is quoted. Numbers and booleans
are written as JSON writes them. A table's scalars and arrays come first,
then its sub-tables as [a.b] sections; an empty table is left out.
*/}}
{{- define "rivulet.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . }}{{ . }}{{ else }}{{ toJson . }}{{ end }}
{{- end }}

{{- define "rivulet.tomlValue" -}}
{{- $v := . }}
{{- if kindIs "map" $v }}
{{- $parts := list }}
{{- range $k, $item := $v }}
{{- $parts = append $parts (printf "%s = %s" (include "rivulet.tomlKey" $k) (include "rivulet.tomlValue" $item)) }}
{{- end }}
{{- printf "{ %s }" (join ", " $parts) }}
{{- else if kindIs "slice" $v }}
{{- $parts := list }}
{{- range $item := $v }}
{{- $parts = append $parts (include "rivulet.tomlValue" $item) }}
{{- end }}
{{- printf "[%s]" (join ", " $parts) }}
{{- else if kindIs "invalid" $v }}
{{- fail "a config value is null, which TOML cannot express: remove the key instead" }}
{{- else }}
{{- toJson $v }}
{{- end }}
{{- end }}

{{- define "rivulet.tomlTable" -}}
{{- $path := .path }}
{{- range $k, $v := .table }}
{{- if not (kindIs "map" $v) }}
{{ include "rivulet.tomlKey" $k }} = {{ include "rivulet.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .table }}
{{- if and (kindIs "map" $v) (gt (len $v) 0) }}
{{- $sub := append $path (include "rivulet.tomlKey" $k) }}
{{- $hasScalars := false }}
{{- range $v }}{{ if not (kindIs "map" .) }}{{ $hasScalars = true }}{{ end }}{{ end }}
{{- if $hasScalars }}

[{{ join "." $sub }}]
{{- end }}
{{- include "rivulet.tomlTable" (dict "path" $sub "table" $v) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
KEDA: the consumer group, the brokers and the security settings of the kafka
trigger, from the keda values or else from the application's config.
*/}}
{{- define "rivulet.keda.consumerGroup" -}}
{{- $group := .Values.keda.consumerGroup | default (dig "application_id" "" .Values.config) }}
{{- if not $group }}
{{- fail "keda.enabled needs the consumer group: set config.application_id (rivulet's group) or keda.consumerGroup" }}
{{- end }}
{{- $group }}
{{- end }}

{{- define "rivulet.keda.bootstrapServers" -}}
{{- $servers := .Values.keda.bootstrapServers | default (dig "kafka" "bootstrap_servers" "" .Values.config) }}
{{- if not $servers }}
{{- fail "keda.enabled needs the brokers: set config.kafka.bootstrap_servers or keda.bootstrapServers" }}
{{- end }}
{{- $servers }}
{{- end }}

{{/* A librdkafka property of the consumer: its own value, else the common one. */}}
{{- define "rivulet.kafkaConsumerProperty" -}}
{{- $config := .root.Values.config }}
{{- dig "kafka" "consumer" .name (dig "kafka" "common" .name "" $config) $config }}
{{- end }}

{{- define "rivulet.keda.tls" -}}
{{- if .Values.keda.tls }}
{{- .Values.keda.tls }}
{{- else }}
{{- $protocol := include "rivulet.kafkaConsumerProperty" (dict "root" . "name" "security.protocol") | upper }}
{{- ternary "enable" "disable" (has $protocol (list "SSL" "SASL_SSL")) }}
{{- end }}
{{- end }}

{{- define "rivulet.keda.sasl" -}}
{{- if .Values.keda.sasl }}
{{- .Values.keda.sasl }}
{{- else }}
{{- $protocol := include "rivulet.kafkaConsumerProperty" (dict "root" . "name" "security.protocol") | upper }}
{{- if has $protocol (list "SASL_SSL" "SASL_PLAINTEXT") }}
{{- $mechanism := include "rivulet.kafkaConsumerProperty" (dict "root" . "name" "sasl.mechanisms") | default (include "rivulet.kafkaConsumerProperty" (dict "root" . "name" "sasl.mechanism")) | default "GSSAPI" | upper }}
{{- $keda := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" "OAUTHBEARER" "oauthbearer" "GSSAPI" "gssapi" }}
{{- if not (hasKey $keda $mechanism) }}
{{- fail (printf "keda: the SASL mechanism %q has no KEDA equivalent; set keda.sasl" $mechanism) }}
{{- end }}
{{- get $keda $mechanism }}
{{- else }}
{{- "none" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The `helm test` pod's labels: not the pods' selector labels, so neither the
Services, the PodDisruptionBudget nor the NetworkPolicy count it as an
instance.
*/}}
{{- define "rivulet.testSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "rivulet.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rivulet.testImage" -}}
{{- if .Values.tests.image.digest }}
{{- printf "%s@%s" .Values.tests.image.repository .Values.tests.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.tests.image.repository .Values.tests.image.tag }}
{{- end }}
{{- end }}
