{{/*
NetworkPolicy rendering. Each component's required traffic is built as a small model (the
same one `sluice netpol render` reads: a workload with a pod selector and ingress/egress rules
of peers and ports), then written for the chosen engine. The structure of each engine's output
follows `crates/sluice-netpol/src/render.rs`; the chart tests check that both agree.

A workload dict: {name, namespace, podSelector, ingress: [rule], egress: [rule] (absent =
egress unmanaged), rawIngress, rawEgress, order}. A rule: {peers: [peer], raw: [k8s peer],
ports: [{port, protocol}]}. A peer: {pods: labels, namespaces: labels} (either may be absent)
or {cidr: "..."}. `raw` peers and the raw rules are merged verbatim.
*/}}

{{- define "sluice.np.matchLabels" -}}
{{- if . -}}{{- toJson (dict "matchLabels" .) -}}{{- else -}}{}{{- end -}}
{{- end -}}

{{- define "sluice.np.metadata" -}}
{{- $m := dict "name" .name "labels" .labels -}}
{{- if .namespace }}{{ $_ := set $m "namespace" .namespace }}{{ end -}}
{{- toJson $m -}}
{{- end -}}

{{/* networking.k8s.io/v1 NetworkPolicy. */}}
{{- define "sluice.np.kubernetes" -}}
{{- $w := . -}}
{{- $spec := dict "podSelector" (include "sluice.np.matchLabels" $w.podSelector | fromJson) -}}
{{- $types := list "Ingress" -}}
{{- if hasKey $w "egress" }}{{ $types = append $types "Egress" }}{{ end -}}
{{- $_ := set $spec "policyTypes" $types -}}
{{- range $dir := list "ingress" "egress" -}}
{{- if hasKey $w $dir -}}
{{- $rules := list -}}
{{- range $rule := get $w $dir -}}
{{- $r := dict -}}
{{- $peers := list -}}
{{- range $p := $rule.peers -}}
{{- if hasKey $p "cidr" -}}
{{- $peers = append $peers (dict "ipBlock" (dict "cidr" $p.cidr)) -}}
{{- else -}}
{{- $pp := dict -}}
{{- if hasKey $p "pods" }}{{ $_ := set $pp "podSelector" (include "sluice.np.matchLabels" $p.pods | fromJson) }}{{ end -}}
{{- if hasKey $p "namespaces" }}{{ $_ := set $pp "namespaceSelector" (include "sluice.np.matchLabels" $p.namespaces | fromJson) }}{{ end -}}
{{- $peers = append $peers $pp -}}
{{- end -}}
{{- end -}}
{{- range $p := $rule.raw }}{{ $peers = append $peers $p }}{{ end -}}
{{- if $peers }}{{ $_ := set $r (ternary "from" "to" (eq $dir "ingress")) $peers }}{{ end -}}
{{- if $rule.ports -}}
{{- $ports := list -}}
{{- range $p := $rule.ports }}{{ $ports = append $ports (dict "protocol" $p.protocol "port" (int $p.port)) }}{{ end -}}
{{- $_ := set $r "ports" $ports -}}
{{- end -}}
{{- $rules = append $rules $r -}}
{{- end -}}
{{- range $raw := get $w (ternary "rawIngress" "rawEgress" (eq $dir "ingress")) }}{{ $rules = append $rules $raw }}{{ end -}}
{{- $_ := set $spec $dir $rules -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "apiVersion" "networking.k8s.io/v1" "kind" "NetworkPolicy" "metadata" (include "sluice.np.metadata" (dict "name" $w.name "namespace" $w.namespace "labels" $w.labels) | fromJson) "spec" $spec) -}}
{{- end -}}

{{/* cilium.io/v2 CiliumNetworkPolicy. */}}
{{- define "sluice.np.cilium" -}}
{{- $w := . -}}
{{- $nsKey := "k8s:io.kubernetes.pod.namespace" -}}
{{- $spec := dict "endpointSelector" (include "sluice.np.matchLabels" $w.podSelector | fromJson) -}}
{{- range $dir := list "ingress" "egress" -}}
{{- if hasKey $w $dir -}}
{{- $keys := ternary (list "fromEndpoints" "fromCIDRSet" "fromEntities") (list "toEndpoints" "toCIDRSet" "toEntities") (eq $dir "ingress") -}}
{{- $rules := list -}}
{{- if not (get $w $dir) }}{{ $rules = append $rules (dict) }}{{ end -}}
{{- range $rule := get $w $dir -}}
{{- $endpoints := list -}}
{{- $cidrs := list -}}
{{- range $p := $rule.peers -}}
{{- if hasKey $p "cidr" -}}
{{- $cidrs = append $cidrs (dict "cidr" $p.cidr) -}}
{{- else -}}
{{- $labels := dict -}}
{{- range $k, $v := ($p.pods | default dict) }}{{ $_ := set $labels $k $v }}{{ end -}}
{{- $sel := dict -}}
{{- if hasKey $p "namespaces" -}}
{{- range $k, $v := $p.namespaces }}{{ $_ := set $labels (printf "k8s:io.cilium.k8s.namespace.labels.%s" $k) $v }}{{ end -}}
{{- $_ := set $sel "matchExpressions" (list (dict "key" $nsKey "operator" "Exists")) -}}
{{- else -}}
{{- $_ := set $labels $nsKey $w.namespace -}}
{{- end -}}
{{- if $labels }}{{ $_ := set $sel "matchLabels" $labels }}{{ end -}}
{{- $endpoints = append $endpoints $sel -}}
{{- end -}}
{{- end -}}
{{- $groups := list -}}
{{- if not $rule.peers }}{{ $groups = append $groups (list (index $keys 2) (list "all")) }}{{ end -}}
{{- if $endpoints }}{{ $groups = append $groups (list (index $keys 0) $endpoints) }}{{ end -}}
{{- if $cidrs }}{{ $groups = append $groups (list (index $keys 1) $cidrs) }}{{ end -}}
{{- range $g := $groups -}}
{{- $r := dict (index $g 0) (index $g 1) -}}
{{- if $rule.ports -}}
{{- $ports := list -}}
{{- range $p := $rule.ports }}{{ $ports = append $ports (dict "port" (printf "%d" (int $p.port)) "protocol" $p.protocol) }}{{ end -}}
{{- $_ := set $r "toPorts" (list (dict "ports" $ports)) -}}
{{- end -}}
{{- $rules = append $rules $r -}}
{{- end -}}
{{- end -}}
{{- range $raw := get $w (ternary "rawIngress" "rawEgress" (eq $dir "ingress")) }}{{ $rules = append $rules $raw }}{{ end -}}
{{- $_ := set $spec $dir $rules -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "apiVersion" "cilium.io/v2" "kind" "CiliumNetworkPolicy" "metadata" (include "sluice.np.metadata" (dict "name" $w.name "namespace" $w.namespace "labels" $w.labels) | fromJson) "spec" $spec) -}}
{{- end -}}

{{/* A Calico selector expression for equality labels. */}}
{{- define "sluice.np.calicoSelector" -}}
{{- if . -}}
{{- $parts := list -}}
{{- range $k, $v := . }}{{ $parts = append $parts (printf "%s == '%s'" $k $v) }}{{ end -}}
{{- join " && " $parts -}}
{{- else -}}all(){{- end -}}
{{- end -}}

{{/* projectcalico.org/v3 NetworkPolicy. */}}
{{- define "sluice.np.calico" -}}
{{- $w := . -}}
{{- $types := list "Ingress" -}}
{{- if hasKey $w "egress" }}{{ $types = append $types "Egress" }}{{ end -}}
{{- $spec := dict "order" (int $w.order) "selector" (include "sluice.np.calicoSelector" $w.podSelector) "types" $types -}}
{{- range $dir := list "ingress" "egress" -}}
{{- if hasKey $w $dir -}}
{{- $rules := list -}}
{{- range $rule := get $w $dir -}}
{{- $entities := list -}}
{{- range $p := $rule.peers -}}
{{- if hasKey $p "cidr" -}}
{{- $entities = append $entities (dict "nets" (list $p.cidr)) -}}
{{- else -}}
{{- $e := dict -}}
{{- if hasKey $p "pods" }}{{ $_ := set $e "selector" (include "sluice.np.calicoSelector" $p.pods) }}{{ end -}}
{{- if hasKey $p "namespaces" }}{{ $_ := set $e "namespaceSelector" (include "sluice.np.calicoSelector" $p.namespaces) }}{{ end -}}
{{- $entities = append $entities $e -}}
{{- end -}}
{{- end -}}
{{- if not $entities }}{{ $entities = list (dict) }}{{ end -}}
{{/* Calico rules name one protocol each: group the ports by protocol (TCP, UDP, SCTP). */}}
{{- $groups := list -}}
{{- range $proto := list "TCP" "UDP" "SCTP" -}}
{{- $ports := list -}}
{{- range $p := $rule.ports }}{{ if eq $p.protocol $proto }}{{ $ports = append $ports (int $p.port) }}{{ end }}{{ end -}}
{{- if $ports }}{{ $groups = append $groups (dict "protocol" $proto "ports" $ports) }}{{ end -}}
{{- end -}}
{{- if not $groups }}{{ $groups = list (dict) }}{{ end -}}
{{- range $e := $entities -}}
{{- range $g := $groups -}}
{{- $r := dict "action" "Allow" -}}
{{- if $g.protocol }}{{ $_ := set $r "protocol" $g.protocol }}{{ end -}}
{{- if eq $dir "ingress" -}}
{{- if $e }}{{ $_ := set $r "source" $e }}{{ end -}}
{{- if $g.ports }}{{ $_ := set $r "destination" (dict "ports" $g.ports) }}{{ end -}}
{{- else -}}
{{- $d := deepCopy $e -}}
{{- if $g.ports }}{{ $_ := set $d "ports" $g.ports }}{{ end -}}
{{- if $d }}{{ $_ := set $r "destination" $d }}{{ end -}}
{{- end -}}
{{- $rules = append $rules $r -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $raw := get $w (ternary "rawIngress" "rawEgress" (eq $dir "ingress")) }}{{ $rules = append $rules $raw }}{{ end -}}
{{- $_ := set $spec $dir $rules -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "apiVersion" "projectcalico.org/v3" "kind" "NetworkPolicy" "metadata" (include "sluice.np.metadata" (dict "name" $w.name "namespace" $w.namespace "labels" $w.labels) | fromJson) "spec" $spec) -}}
{{- end -}}

{{/* policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy, Baseline tier. */}}
{{- define "sluice.np.clusterNetworkPolicy" -}}
{{- $w := . -}}
{{- $nameKey := "kubernetes.io/metadata.name" -}}
{{- $spec := dict "tier" "Baseline" "priority" (int $w.order) "subject" (dict "pods" (dict "namespaceSelector" (dict "matchLabels" (dict $nameKey $w.namespace)) "podSelector" (include "sluice.np.matchLabels" $w.podSelector | fromJson))) -}}
{{- range $dir := list "ingress" "egress" -}}
{{- if hasKey $w $dir -}}
{{- $rules := list -}}
{{- range $i, $rule := get $w $dir -}}
{{- $peers := list -}}
{{- range $p := $rule.peers -}}
{{- if hasKey $p "cidr" -}}
{{- if eq $dir "ingress" }}{{ fail (printf "networkPolicy: the clusterNetworkPolicy engine cannot admit ingress from the CIDR %s (%s): its ingress peers are namespaces and pods only; use the kubernetes, cilium or calico engine" $p.cidr $w.name) }}{{ end -}}
{{- $peers = append $peers (dict "networks" (list $p.cidr)) -}}
{{- else if not (hasKey $p "pods") -}}
{{- $peers = append $peers (dict "namespaces" (include "sluice.np.matchLabels" $p.namespaces | fromJson)) -}}
{{- else -}}
{{- $ns := dict "matchLabels" (dict $nameKey $w.namespace) -}}
{{- if hasKey $p "namespaces" }}{{ $ns = include "sluice.np.matchLabels" $p.namespaces | fromJson }}{{ end -}}
{{- $peers = append $peers (dict "pods" (dict "namespaceSelector" $ns "podSelector" (include "sluice.np.matchLabels" $p.pods | fromJson))) -}}
{{- end -}}
{{- end -}}
{{- if not $peers -}}
{{- $peers = list (dict "namespaces" (dict)) -}}
{{- if eq $dir "egress" }}{{ $peers = append $peers (dict "networks" (list "0.0.0.0/0" "::/0")) }}{{ end -}}
{{- end -}}
{{- $r := dict "name" (printf "%s-%s-%d" $w.name $dir $i) "action" "Accept" (ternary "from" "to" (eq $dir "ingress")) $peers -}}
{{- if $rule.ports -}}
{{- $protocols := list -}}
{{- range $p := $rule.ports }}{{ $protocols = append $protocols (dict (lower $p.protocol) (dict "destinationPort" (dict "number" (int $p.port)))) }}{{ end -}}
{{- $_ := set $r "protocols" $protocols -}}
{{- end -}}
{{- $rules = append $rules $r -}}
{{- end -}}
{{- range $raw := get $w (ternary "rawIngress" "rawEgress" (eq $dir "ingress")) }}{{ $rules = append $rules $raw }}{{ end -}}
{{- $_ := set $spec $dir $rules -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "apiVersion" "policy.networking.k8s.io/v1alpha2" "kind" "ClusterNetworkPolicy" "metadata" (include "sluice.np.metadata" (dict "name" (printf "%s-%s" $w.namespace $w.name) "labels" $w.labels) | fromJson) "spec" $spec) -}}
{{- end -}}

{{/* The namespace-wide default-deny: {engine, name, namespace, order, egress, labels}. */}}
{{- define "sluice.np.defaultDeny" -}}
{{- $d := . -}}
{{- $meta := include "sluice.np.metadata" (dict "name" $d.name "namespace" $d.namespace "labels" $d.labels) | fromJson -}}
{{- if eq $d.engine "kubernetes" -}}
{{- toYaml (dict "apiVersion" "networking.k8s.io/v1" "kind" "NetworkPolicy" "metadata" $meta "spec" (dict "podSelector" (dict) "policyTypes" (ternary (list "Ingress" "Egress") (list "Ingress") $d.egress))) -}}
{{- else if eq $d.engine "cilium" -}}
{{- $spec := dict "endpointSelector" (dict) "ingress" (list (dict)) -}}
{{- if $d.egress }}{{ $_ := set $spec "egress" (list (dict)) }}{{ end -}}
{{- toYaml (dict "apiVersion" "cilium.io/v2" "kind" "CiliumNetworkPolicy" "metadata" $meta "spec" $spec) -}}
{{- else if eq $d.engine "calico" -}}
{{- $spec := dict "order" (int $d.order) "selector" "all()" "types" (list "Ingress") "ingress" (list (dict "action" "Deny")) -}}
{{- if $d.egress }}{{ $_ := set $spec "types" (list "Ingress" "Egress") }}{{ $_ := set $spec "egress" (list (dict "action" "Deny")) }}{{ end -}}
{{- toYaml (dict "apiVersion" "projectcalico.org/v3" "kind" "NetworkPolicy" "metadata" $meta "spec" $spec) -}}
{{- else -}}
{{- $spec := dict "tier" "Baseline" "priority" (int $d.order) "subject" (dict "namespaces" (dict "matchLabels" (dict "kubernetes.io/metadata.name" $d.namespace))) "ingress" (list (dict "name" "default-deny" "action" "Deny" "from" (list (dict "namespaces" (dict))))) -}}
{{- if $d.egress }}{{ $_ := set $spec "egress" (list (dict "name" "default-deny" "action" "Deny" "to" (list (dict "namespaces" (dict)) (dict "networks" (list "0.0.0.0/0" "::/0"))))) }}{{ end -}}
{{- $_ := unset $meta "namespace" -}}
{{- $_ := set $meta "name" (printf "%s-%s" $d.name $d.namespace) -}}
{{- toYaml (dict "apiVersion" "policy.networking.k8s.io/v1alpha2" "kind" "ClusterNetworkPolicy" "metadata" $meta "spec" $spec) -}}
{{- end -}}
{{- end -}}
