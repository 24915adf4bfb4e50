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

{{- /* The controller's settings for the pods of every run (controller/settings.py reads them). */ -}}
{{- define "anchor.runEnv" -}}
{{- $job := .Values.job -}}
{{- $engine := .Values.engine -}}
- name: ANCHOR_JOB_IMAGE
  value: {{ include "anchor.image" (dict "image" $job.image "appVersion" .Chart.AppVersion) | quote }}
- name: ANCHOR_IMAGE_PULL_POLICY
  value: {{ $job.image.pullPolicy | quote }}
- name: ANCHOR_ENGINE_GPU_IMAGE
  value: {{ $engine.gpuImage | quote }}
- name: ANCHOR_ENGINE_CPU_IMAGE
  value: {{ $engine.cpuImage | quote }}
- name: ANCHOR_ENGINE_PULL_POLICY
  value: {{ $engine.pullPolicy | quote }}
{{- range $name, $resources := dict "JOB" $job.resources "ENGINE" $engine.resources }}
{{- with ($resources.requests | default dict).cpu }}
- name: ANCHOR_{{ $name }}_CPU
  value: {{ . | quote }}
{{- end }}
{{- with ($resources.requests | default dict).memory }}
- name: ANCHOR_{{ $name }}_MEMORY_REQUEST
  value: {{ . | quote }}
{{- end }}
{{- with ($resources.limits | default dict).memory }}
- name: ANCHOR_{{ $name }}_MEMORY
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- with .Values.imagePullSecrets }}
{{- $names := list }}
{{- range . }}{{ $names = append $names .name }}{{ end }}
- name: ANCHOR_IMAGE_PULL_SECRETS
  value: {{ join "," $names | quote }}
{{- end }}
{{- with $job.podAnnotations }}
- name: ANCHOR_POD_ANNOTATIONS
  value: {{ toJson . | quote }}
{{- end }}
{{- with $job.podLabels }}
- name: ANCHOR_POD_LABELS
  value: {{ toJson . | quote }}
{{- end }}
{{- with $job.queueName }}
- name: ANCHOR_QUEUE_NAME
  value: {{ . | quote }}
{{- end }}
{{- with .Values.cost.gpuPrices }}
- name: ANCHOR_GPU_PRICES
  value: {{ toJson . | quote }}
- name: ANCHOR_COST_CURRENCY
  value: {{ $.Values.cost.currency | quote }}
{{- end }}
{{- end -}}

{{- /* " of broadcast ns/name", " in namespace ns" or "": what one cost budget covers (monitoring.prometheusRule.cost.by). */ -}}
{{- define "anchor.costScope" -}}
{{- if has "broadcast" . }} of broadcast {{ if has "namespace" . }}{{`{{ $labels.namespace }}`}}/{{ end }}{{`{{ $labels.broadcast }}`}}
{{- else if has "namespace" . }} in namespace {{`{{ $labels.namespace }}`}}
{{- end }}
{{- end -}}
