{{/* The prefix of every resource name: the release name cut to 40 characters, so that
   the names built from it stay within the 63 that Kubernetes allows. */}}
{{- define "dispa.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "dispa.labels" -}}
app.kubernetes.io/name: dispa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "dispa.coreSelectorLabels" -}}
app.kubernetes.io/name: dispa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: core
{{- end -}}

{{- define "dispa.edgeSelectorLabels" -}}
app.kubernetes.io/name: dispa
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: edge
{{- end -}}

{{- define "dispa.secretName" -}}
{{- if .Values.secret.existingSecret -}}
{{- .Values.secret.existingSecret -}}
{{- else -}}
{{- include "dispa.fullname" . }}-cluster
{{- end -}}
{{- end -}}

{{/* The domain of the headless Service that gives each core a stable DNS name. */}}
{{- define "dispa.peerDomain" -}}
{{- include "dispa.fullname" . }}-core-peers.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{- define "dispa.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
