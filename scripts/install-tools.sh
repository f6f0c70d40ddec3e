#!/usr/bin/env bash
# Installs the tools the tests use besides Go and MLflow:
#   - helm v3.22.0 (go install, into $(go env GOPATH)/bin), for the chart tests;
#   - prometheus and promtool (Debian's prometheus package), for the alert rule tests and
#     the dashboard test against a real Prometheus. apt-get needs root (or password-less
#     sudo); without it the script says what to run and the tests that need them skip
#     (they fail instead when CI is set).
set -euo pipefail
HELM_VERSION=v3.22.0
say() { printf 'install-tools: %s\n' "$*" >&2; }

gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin=$(go env GOPATH)/bin
# A helm built by go install reports its version without the patch number (v3.22).
if [ -x "$gobin/helm" ] && "$gobin/helm" version --template '{{.Version}}' 2>/dev/null | grep -Eq "^${HELM_VERSION%.0}(\.0)?$"; then
  say "helm $HELM_VERSION already in $gobin"
else
  say "installing helm $HELM_VERSION into $gobin (go install; a few minutes the first time)"
  GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  say "prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}') already installed"
else
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      say "prometheus is missing and installing it needs root: run  sudo apt-get install prometheus"
      exit 0
    fi
  fi
  say "installing Debian's prometheus package"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  # The package starts a service where systemd runs; the tests start their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $sudo systemctl stop prometheus || true
  fi
fi
