{{/*
Names, labels and image references shared by every template.
Object names are `<fullname>-<component>`; Kubernetes caps names at 63 characters
for labels and Services, so every name is truncated there.
*/}}

{{/* Chart name, overridable. */}}
{{- define "ironlb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: the release name, followed by the chart name unless the
release name already contains it (`helm install ironlb ...` gives `ironlb-controller`,
not `ironlb-ironlb-controller`).
*/}}
{{- define "ironlb.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* `helm.sh/chart` label value. */}}
{{- define "ironlb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of a component's objects. Call with (dict "root" $ "component" "speaker").
*/}}
{{- define "ironlb.componentName" -}}
{{- printf "%s-%s" (include "ironlb.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "ironlb.labels" -}}
helm.sh/chart: {{ include "ironlb.chart" . }}
app.kubernetes.io/name: {{ include "ironlb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ironlb
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels of a component: stable across upgrades (never add a label here that
changes with the chart version, selectors are immutable).
Call with (dict "root" $ "component" "controller").
*/}}
{{- define "ironlb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ironlb.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of a component's objects: the common labels plus the component. */}}
{{- define "ironlb.componentLabels" -}}
{{ include "ironlb.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Label selector string of a component's pods, for flags such as the speaker's
`--peer-selector` (it finds its peers by these labels).
*/}}
{{- define "ironlb.selectorString" -}}
{{- $labels := include "ironlb.selectorLabels" . | fromYaml }}
{{- $pairs := list }}
{{- range $k := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $k (get $labels $k)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
Image reference: registry/repository, then @digest when set, else :tag (default: the
chart's appVersion). Call with (dict "root" $ "image" .Values.controller.image).
*/}}
{{- define "ironlb.image" -}}
{{- $repo := .image.repository }}
{{- if .image.registry }}
{{- $repo = printf "%s/%s" .image.registry .image.repository }}
{{- end }}
{{- if .image.digest }}
{{- printf "%s@%s" $repo .image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion .image.tag | toString) }}
{{- end }}
{{- end }}

{{/* ServiceAccount name of a component. Call with (dict "root" $ "component" "gateway"). */}}
{{- define "ironlb.serviceAccountName" -}}
{{- $sa := (index .root.Values .component).serviceAccount }}
{{- if $sa.create }}
{{- default (include "ironlb.componentName" .) $sa.name }}
{{- else }}
{{- default "default" $sa.name }}
{{- end }}
{{- end }}

{{/* Name of the speakers' heartbeat key Secret. */}}
{{- define "ironlb.membershipSecretName" -}}
{{- default (printf "%s-membership" (include "ironlb.componentName" (dict "root" . "component" "speaker"))) .Values.speaker.membershipSecret.name | trunc 253 }}
{{- end }}

{{/* Name of the gateway's LoadBalancer Service (what `--publish-service` points at). */}}
{{- define "ironlb.gatewayServiceName" -}}
{{- include "ironlb.componentName" (dict "root" . "component" "gateway") }}
{{- end }}

{{/*
Environment every component gets: its pod's name and namespace (leader election
identity, where its Lease and Secret live), log format and filter.
*/}}
{{- define "ironlb.commonEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end }}

{{/*
Probes on the health server (`/healthz` liveness, `/readyz` readiness), port `metrics`.
*/}}
{{- define "ironlb.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
{{- end }}

{{/*
Container securityContext of the controller and gateway: non-root, no capabilities,
read-only root filesystem. (The speaker's differs: see speaker/daemonset.yaml.)
*/}}
{{- define "ironlb.restrictedSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Default affinity for a replicated component: prefer spreading pods over nodes.
Call with (dict "root" $ "component" "controller").
*/}}
{{- define "ironlb.spreadAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "ironlb.selectorLabels" . | nindent 12 }}
{{- end }}
