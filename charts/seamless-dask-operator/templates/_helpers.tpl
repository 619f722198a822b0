{{/* Chart name, truncated to 63 characters. */}}
{{- define "sdo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "sdo.fullname" -}}
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

{{- define "sdo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the operator's selector (stable across upgrades). */}}
{{- define "sdo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sdo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "sdo.labels" -}}
helm.sh/chart: {{ include "sdo.chart" . }}
{{ include "sdo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: seamless-dask
{{- end }}

{{- define "sdo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sdo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "sdo.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The default scheduler/worker image: runtimeImage, as sdo.image (tag defaults to appVersion). */}}
{{- define "sdo.runtimeImage" -}}
{{- if .Values.runtimeImage.digest }}
{{- printf "%s@%s" .Values.runtimeImage.repository .Values.runtimeImage.digest }}
{{- else }}
{{- printf "%s:%s" .Values.runtimeImage.repository (default .Chart.AppVersion .Values.runtimeImage.tag) }}
{{- end }}
{{- end }}

{{/* Watched namespaces, comma-separated (empty: all namespaces). */}}
{{- define "sdo.namespacesCSV" -}}
{{- join "," .Values.watchNamespaces }}
{{- end }}

{{/*
RBAC: what the operator does in a namespace it serves. Keep in step with
operator/seamless_dask_operator/kube.py and handlers/; tests/chart/test_rbac.py
compares these rules with the list of calls the operator makes.
*/}}
{{- define "sdo.namespacedRules" -}}
# The custom resources: kopf lists/watches them, patches finalizers, annotations
# (progress and diff-base storage) and .status; the idle timeout deletes one.
- apiGroups: [seamless.dask.org]
  resources: [seamlessdaskclusters]
  verbs: [list, watch, patch, delete]
- apiGroups: [seamless.dask.org]
  resources: [seamlessdaskclusters/status]
  verbs: [patch]
# The scheduler Service: watched (drift: deleted or edited by hand is applied
# again), a get first (one of the same name that the cluster does not own is never
# taken over), then server-side apply (patch; create when absent); deletion with
# the cluster, only when owned.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# The cluster's NetworkPolicy (who may reach its pods): created, or on a name taken a
# get tells whose it is (never take over one of the same name), then server-side
# apply; garbage collection deletes it (the operator deletes a leftover of a former
# cluster of the same name at once, by its uid).
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create, patch, delete]
# The scheduler's PodDisruptionBudget (no voluntary eviction of a running scheduler):
# a get first (never take over one of the same name), then server-side apply;
# garbage collection deletes it (a leftover of a former cluster of the same name: at once, by its uid).
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, create, patch, delete]
# Pods: one watch feeds the operator's index; the scheduler pod and worker pods are
# created by name (on a name taken, a get tells whose pod it is) and deleted by name
# (retired workers, an outdated scheduler, or with the cluster: owned ones only); a
# rollout's new scheduler is relabelled when it takes over (patch: its labels only).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, patch, delete]
# TLS (spec.tls.enabled): the certificates' Secret is created once and deleted with
# the cluster. Whose a Secret of that name is, its ownerReference says: `get` reads it
# as metadata only (PartialObjectMetadata), the operator never asks for any Secret's
# data. (The uid recorded in .status, which anyone with the status subresource may
# write, made another's Secret look like the cluster's; `create pods` already lets
# this account mount any Secret, so `get` adds no reach.)
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, delete]
# An upgrade from the layout whose scheduler was a Deployment: that Deployment and its
# ReplicaSet (each read first: only the cluster's own) are deleted as orphans, and
# their pod kept as the cluster's scheduler (kube.adopt_scheduler).
- apiGroups: [apps]
  resources: [deployments, replicasets]
  verbs: [get, delete]
# Events: kopf.warn/kopf.info post core/v1 Events.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
RBAC: the cluster-scoped reads kopf 1.45 makes (measured with the API server's
audit log, tests/chart/test_operator_rbac.py). kopf's resource observer lists
and watches CustomResourceDefinitions (to re-scan served resources when one
changes) in every mode; with --namespace, its namespace observer also lists
and watches namespaces. Neither needs `get`.
*/}}
{{- define "sdo.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.watchNamespaces }}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}
{{- end }}
