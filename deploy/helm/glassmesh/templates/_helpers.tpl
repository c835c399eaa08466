{{/* The name of every object: the release name, or release-chart when the release name does not contain the chart's. */}}
{{- define "glassmesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "glassmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "glassmesh.labels" -}}
{{ include "glassmesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* `glassmesh run` arguments, one per line. */}}
{{- define "glassmesh.args" -}}
- run
- --source=kubernetes
- --data-dir=/var/lib/glassmesh
- --http-addr=:20001
- --grpc-addr=:15010
{{- $xdsHost := printf "%s.%s.svc" (include "glassmesh.fullname" .) .Release.Namespace }}
- --xds-tls-addr=:15012
- --xds-tls-hosts={{ $xdsHost }}
- --otlp-grpc-addr=:4317
- --otlp-http-addr=:4318
- --zipkin-addr=:9411
- --trust-domain={{ .Values.trustDomain }}
- --cert-ttl={{ .Values.certTTL }}
- --log.level={{ .Values.logLevel }}
- --log.format={{ .Values.logFormat }}
{{- range .Values.remoteWrite }}
- --remote-write-url={{ . }}
{{- end }}
{{- if .Values.remoteWrite }}
{{- /* each replica's series apart in the store; the kubelet expands $(POD_NAME) */}}
- --remote-write.external-label=replica=$(POD_NAME)
{{- end }}
{{- range .Values.tracesExportOTLP }}
- --traces.export-otlp={{ . }}
{{- end }}
{{- with .Values.metricsQueryURL }}
- --metrics.query-url={{ . }}
{{- end }}
{{- with .Values.tracesQueryURL }}
- --traces.query-url={{ . }}
{{- end }}
{{- if .Values.apiToken.existingSecret }}
- --api-token-file=/etc/glassmesh/token/{{ .Values.apiToken.key }}
{{- end }}
{{- if .Values.ca.existingSecret }}
- --ca-cert=/etc/glassmesh/ca/tls.crt
- --ca-key=/etc/glassmesh/ca/tls.key
{{- end }}
{{- if .Values.webhook.enabled }}
{{- $host := printf "%s.%s.svc" (include "glassmesh.fullname" .) .Release.Namespace }}
- --webhook-addr=:15017
- --webhook-dns={{ $host }}
- --webhook-config={{ include "glassmesh.fullname" . }}-sidecar-injector
- --inject.image={{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
- --inject.xds-addr={{ $host }}:15010
- --inject.xds-tls-addr={{ $host }}:15012
- --inject.server=http://{{ $host }}:20001
{{- with .Values.webhook.envoyImage }}
- --inject.envoy-image={{ . }}
{{- end }}
{{- with .Values.webhook.proxyInitImage }}
- --inject.proxy-init-image={{ . }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}
