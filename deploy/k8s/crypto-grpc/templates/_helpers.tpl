{{/* Chart name, truncated to the 63 characters a label allows. */}}
{{- define "crypto-grpc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name used for every object. */}}
{{- define "crypto-grpc.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "crypto-grpc.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "crypto-grpc.labels" -}}
helm.sh/chart: {{ include "crypto-grpc.chart" . }}
app.kubernetes.io/name: {{ include "crypto-grpc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crypto-grpc
{{- end -}}

{{/* Selector of the gRPC server pods. */}}
{{- define "crypto-grpc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crypto-grpc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: grpc
{{- end -}}

{{/* Selector of the web (admin) pods. */}}
{{- define "crypto-grpc.webSelectorLabels" -}}
app.kubernetes.io/name: {{ include "crypto-grpc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: web
{{- end -}}

{{- define "crypto-grpc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "crypto-grpc.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "crypto-grpc.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Pod termination budget. The kubelet counts the preStop hook against the
grace period, so it must cover: preStop sleep (endpoints catch up) + the
app's stream drain window (GRPC_SHUTDOWN_GRACE) + a margin for the process
to exit after draining.
*/}}
{{- define "crypto-grpc.terminationGracePeriodSeconds" -}}
{{- add .Values.preStop.sleepSeconds .Values.drain.graceSeconds .Values.drain.marginSeconds -}}
{{- end -}}

{{/* In-cluster address of the gRPC Service (same namespace). */}}
{{/*
DJANGO_ALLOWED_HOSTS of the web tier: port-forwards (localhost), the web
Service's in-cluster names, the Ingress hosts and HTTPRoute hostnames
(*.example.com as Django's .example.com), then web.allowedHosts.
*/}}
{{- define "crypto-grpc.webAllowedHosts" -}}
{{- $svc := printf "%s-web" (include "crypto-grpc.fullname" .) -}}
{{- $hosts := list "localhost" "127.0.0.1" $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) -}}
{{- $routed := list -}}
{{- if .Values.web.ingress.enabled -}}
{{- range .Values.web.ingress.hosts -}}
{{- $routed = append $routed .host -}}
{{- end -}}
{{- end -}}
{{- if .Values.web.httpRoute.enabled -}}
{{- $routed = concat $routed .Values.web.httpRoute.hostnames -}}
{{- end -}}
{{- range $routed -}}
{{- $hosts = append $hosts (regexReplaceAll "^\\*\\." . ".") -}}
{{- end -}}
{{- concat $hosts .Values.web.allowedHosts | uniq | join "," -}}
{{- end -}}

{{- define "crypto-grpc.grpcTarget" -}}
{{- printf "%s:%d" (include "crypto-grpc.fullname" .) (int .Values.service.port) -}}
{{- end -}}

{{/*
Non-secret configuration as env var name -> string value. Rendered into the
ConfigMap, and inline into the migration Job (a pre-install hook runs before
the ConfigMap exists).
*/}}
{{- define "crypto-grpc.configData" -}}
CRYPTO_AUTH: {{ ternary "on" "off" .Values.config.auth | quote }}
LOG_FORMAT: {{ .Values.config.logFormat | quote }}
LOG_LEVEL: {{ .Values.config.logLevel | quote }}
GRPC_HOST: {{ .Values.grpc.host | quote }}
GRPC_PORT: {{ .Values.grpc.port | int64 | toString | quote }}
GRPC_SHUTDOWN_GRACE: {{ .Values.drain.graceSeconds | int64 | toString | quote }}
METRICS_PORT: {{ .Values.metrics.port | int64 | toString | quote }}
{{- if not (kindIs "invalid" .Values.drain.windowSeconds) }}
{{- if ge (float64 .Values.drain.windowSeconds) (float64 .Values.drain.graceSeconds) }}
{{- fail "drain.windowSeconds must be shorter than drain.graceSeconds" }}
{{- end }}
CRYPTO_DRAIN_WINDOW: {{ .Values.drain.windowSeconds | toString | quote }}
{{- end }}
{{- with .Values.config.centrifugoApiUrl }}
CENTRIFUGO_API_URL: {{ . | quote }}
{{- end }}
{{- with .Values.grpc.experiments }}
GRPC_EXPERIMENTS: {{ . | quote }}
{{- end }}
{{- $grpcOptions := dict
      "GRPC_KEEPALIVE_TIME_MS" .Values.grpc.keepaliveTimeMs
      "GRPC_KEEPALIVE_TIMEOUT_MS" .Values.grpc.keepaliveTimeoutMs
      "GRPC_MAX_CONNECTION_AGE_MS" .Values.grpc.maxConnectionAgeMs
      "GRPC_MAX_CONNECTION_AGE_GRACE_MS" .Values.grpc.maxConnectionAgeGraceMs
      "GRPC_MAX_MESSAGE_BYTES" .Values.grpc.maxMessageBytes }}
{{- range $name, $value := $grpcOptions }}
{{- if not (kindIs "invalid" $value) }}
{{ $name }}: {{ $value | int64 | toString | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
REDIS_URL built from redis.* (modes single, sentinel, cluster), never with a
password: the passwords come from Secret keys as REDIS_PASSWORD and
REDIS_SENTINEL_PASSWORD. The values schema has already checked the combination.
*/}}
{{- define "crypto-grpc.redisUrl" -}}
{{- $redis := .Values.redis -}}
{{- if not $redis.hosts -}}
{{- fail (printf "redis.hosts must list at least one host:port for redis.mode %s" $redis.mode) -}}
{{- end -}}
{{- $scheme := ternary "rediss" "redis" $redis.tls -}}
{{- if ne $redis.mode "single" -}}
{{- $scheme = printf "%s+%s" $scheme $redis.mode -}}
{{- end -}}
{{- $user := "" -}}
{{- with $redis.username -}}
{{- $user = printf "%s@" . -}}
{{- end -}}
{{- $path := "" -}}
{{- if eq $redis.mode "single" -}}
{{- $path = printf "/%d" (int $redis.db) -}}
{{- else if eq $redis.mode "sentinel" -}}
{{- $path = printf "/%s/%d" $redis.masterName (int $redis.db) -}}
{{- end -}}
{{- printf "%s://%s%s%s" $scheme $user (join "," $redis.hosts) $path -}}
{{- end -}}

{{/*
Redis env entries beyond secret.keys: REDIS_URL as a plain value when the
chart builds it, and the password keys (any mode, "url" included).
*/}}
{{- define "crypto-grpc.redisEnv" -}}
{{- $redis := .Values.redis -}}
{{- $secretName := default .Values.secret.name $redis.existingSecret -}}
{{- if ne $redis.mode "url" }}
- name: REDIS_URL
  value: {{ include "crypto-grpc.redisUrl" . | quote }}
{{- end }}
{{- with $redis.existingSecretPasswordKey }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ . }}
{{- end }}
{{- with $redis.existingSecretSentinelPasswordKey }}
- name: REDIS_SENTINEL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ . }}
{{- end }}
{{- end -}}

{{/*
Env entries that read secrets from the existing Secret, never inline. With
redis.mode other than "url" the chart builds REDIS_URL, so secret.keys.REDIS_URL
is not read.
*/}}
{{- define "crypto-grpc.secretEnv" -}}
{{- $secret := .Values.secret -}}
{{- $builtRedisUrl := ne .Values.redis.mode "url" -}}
{{- range $name, $key := $secret.keys }}
{{- if not (and $builtRedisUrl (eq $name "REDIS_URL")) }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret.name }}
      key: {{ $key }}
      {{- if has $name $secret.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}
{{- include "crypto-grpc.redisEnv" . }}
{{- end -}}

{{/*
Extra containers (sidecars, initContainers): as given, plus the chart's
containerSecurityContext when one has no securityContext of its own, so the
pod stays within the restricted profile. Call with (dict "containers" LIST "root" $).
*/}}
{{- define "crypto-grpc.extraContainers" -}}
{{- range .containers }}
{{- $container := deepCopy . }}
{{- if not (hasKey $container "securityContext") }}
{{- $_ := set $container "securityContext" $.root.Values.containerSecurityContext }}
{{- end }}
{{ toYaml (list $container) }}
{{- end }}
{{- end -}}

{{/*
Names of the Secrets the app's containers read: secret.name, redis.existingSecret,
and the Secrets named in extraEnv (secretKeyRef) and envFrom (secretRef).
*/}}
{{- define "crypto-grpc.secretNames" -}}
{{- $names := list .Values.secret.name -}}
{{- with .Values.redis.existingSecret }}
{{- $names = append $names . -}}
{{- end }}
{{- range .Values.extraEnv }}
{{- with .valueFrom }}{{ with .secretKeyRef }}
{{- $names = append $names .name -}}
{{- end }}{{ end }}
{{- end }}
{{- range .Values.envFrom }}
{{- with .secretRef }}
{{- $names = append $names .name -}}
{{- end }}
{{- end }}
{{- $names | uniq | sortAlpha | toJson -}}
{{- end -}}

{{/*
checksum/secret: SHA-256 over the data of the Secrets the pods read, looked up
in the cluster at install/upgrade time (secret.checksum), so that a rotated
Secret rolls the pods on the next `helm upgrade`. Empty when nothing is found
or there is no cluster (`helm template`, `helm lint`, --dry-run=client, GitOps
tools that render offline): the annotation is then left out. Only a digest
reaches the manifest, never a value.
*/}}
{{- define "crypto-grpc.secretChecksum" -}}
{{- if .Values.secret.checksum -}}
{{- $found := dict -}}
{{- range include "crypto-grpc.secretNames" . | fromJsonArray }}
{{- $secret := lookup "v1" "Secret" $.Release.Namespace . -}}
{{- if $secret }}
{{- $_ := set $found . (get $secret "data" | default dict) -}}
{{- end }}
{{- end }}
{{- if $found }}
{{- toJson $found | sha256sum -}}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Pod and container security contexts: podSecurityContext and
containerSecurityContext from values (the restricted profile by default). */}}
{{- define "crypto-grpc.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{- define "crypto-grpc.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{/* Writable scratch space on a read-only root filesystem. */}}
{{- define "crypto-grpc.scratchVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
- name: logs
  emptyDir:
    sizeLimit: {{ .Values.scratch.logsSizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "crypto-grpc.scratchMounts" -}}
- name: tmp
  mountPath: /tmp
- name: logs
  mountPath: /app/logs
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}
