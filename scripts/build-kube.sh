#!/usr/bin/env bash
# Builds the real Kubernetes API server (k8s.io/kubernetes v1.34.4) and etcd (v3.6.4)
# that the HA tests run leader election against, from scripts/kube (its own Go module),
# into a cache outside the clone ($MODELGATE_KUBE_CACHE, default ~/.cache/modelgate-kube),
# under a hash of that module and the Go version, and points .cache/kube/bin at it. A
# clean clone on the same machine (CI) reuses the build: the first one takes 6 to 13
# minutes on 2 CPUs, a cached one nothing. Prints the bin directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/scripts/kube
say() { printf 'build-kube: %s\n' "$*" >&2; }

hash=$( (cd "$src" && cat go.mod go.sum etcd/main.go kube-apiserver/main.go; go env GOVERSION GOARCH) | sha256sum | cut -c1-16)
cache=${MODELGATE_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelgate-kube}
out=$cache/$hash
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ]; then
  say "kube-apiserver and etcd already built in $out"
else
  say "building kube-apiserver v1.34.4 and etcd v3.6.4 into $out (about 5 minutes the first time)"
  mkdir -p "$out.tmp"
  start=$(date +%s)
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$out.tmp/etcd" ./etcd &&
    CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$out.tmp/kube-apiserver" ./kube-apiserver)
  rm -rf "$out" && mv "$out.tmp" "$out"
  say "built in $(( $(date +%s) - start )) s"
fi
mkdir -p "$root/.cache/kube"
ln -sfn "$out" "$root/.cache/kube/bin"
echo "$root/.cache/kube/bin"
