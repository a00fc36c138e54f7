#!/usr/bin/env bash
# End-to-end run of `sluice controller` against a real cluster (kind).
#
# It CANNOT run on the machines sluice is developed on (no Docker, no kube-apiserver), and CI
# does not run it; the in-process test API server covers the same ground there (docs/testing.md).
# Requirements: docker, kind, kubectl, cargo.
#
#   hack/e2e-kind.sh            # create a cluster, run the example, tear down
#   KEEP=1 hack/e2e-kind.sh     # leave the cluster running
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in docker kind kubectl cargo git; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 2; }
done

cluster=sluice-e2e
work=$(mktemp -d)
cleanup() {
  [ -n "${controller_pid:-}" ] && kill "$controller_pid" 2>/dev/null || true
  [ -z "${KEEP:-}" ] && kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

kind create cluster --name "$cluster" --wait 120s
export KUBECONFIG="$work/kubeconfig"
kind get kubeconfig --name "$cluster" >"$KUBECONFIG"

cargo build --release --bin sluice
sluice=target/release/sluice
"$sluice" crds | kubectl apply -f -
kubectl wait --for condition=Established crd/stagesets.sluice.dev crd/projects.sluice.dev --timeout 60s

# The tenant: a namespace, a ServiceAccount with rights there only, and the right for the
# controller identity (this kubeconfig's admin) to impersonate it.
kubectl create namespace shop
kubectl -n shop create serviceaccount shop-deployer
kubectl -n shop create rolebinding shop-deployer --clusterrole admin --serviceaccount shop:shop-deployer
kubectl create clusterrolebinding shop-deployer-crds --clusterrole cluster-admin --serviceaccount shop:shop-deployer
kubectl create namespace sluice-system

# The example's stand-in sources as one local Git repository (the controller pins its SHA).
repo="$work/sources"
cp -r examples/stageset/sources/gitrepository/flux-system "$repo"
git -C "$repo" init -q && git -C "$repo" add . && git -C "$repo" -c user.name=e2e -c user.email=e2e@example.com commit -qm e2e
cat >"$work/stageset.yaml" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: StageSet
metadata: {name: webshop, namespace: shop}
spec:
  serviceAccountName: shop-deployer
  targetNamespace: shop
  stages:
    - {name: platform, source: {git: {url: "file://$repo"}}, path: platform, engine: plain, prune: false}
    - {name: backend, source: {git: {url: "file://$repo"}}, path: backend}
    - {name: frontend, source: {git: {url: "file://$repo"}}, path: frontend, engine: jsonnet}
YAML

"$sluice" controller --namespace sluice-system --metrics-addr 127.0.0.1:18080 --cache-dir "$work/cache" &
controller_pid=$!
kubectl apply -f "$work/stageset.yaml"
# kind has no Widget controller and the images do not exist: wait for the platform stage and
# the backend's apply, then check what landed.
kubectl -n shop wait --for=jsonpath='{.status.stages[0].phase}'=Ready stageset/webshop --timeout 120s
kubectl get crd widgets.example.com
kubectl -n shop get deployment api service api widget checkout
curl -fsS http://127.0.0.1:18080/metrics | grep sluice_objects_applied_total
kubectl -n shop get events --field-selector involvedObject.name=webshop
echo "e2e-kind: ok"
