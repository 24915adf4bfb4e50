{{/* Names and labels: every template takes them from here. */}}
{{- define "anchor.name" -}}anchor{{- end -}}

{{- define "anchor.fullname" -}}
{{- if contains "anchor" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-anchor" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "anchor.labels" -}}
app.kubernetes.io/name: {{ include "anchor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "anchor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "anchor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "anchor.serviceAccountName" -}}
{{- default (include "anchor.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "anchor.image" -}}
{{- printf "%s:%s" .image.repository (default .appVersion .image.tag) -}}
{{- end -}}
