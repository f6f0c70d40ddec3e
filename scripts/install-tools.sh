#!/usr/bin/env bash
# Installs the tools the tests use besides Go and MLflow:
#   - helm v3.22.0 (go install, into $(go env GOPATH)/bin), for the chart tests;
#   - prometheus and promtool (Debian's prometheus package), for the alert rule tests and
#     the dashboard test against a real Prometheus;
#   - chromium (Debian's package: browsers cannot be downloaded here), for the browser
#     test of the reviewer's pages in MLflow's UI and `make screenshots`.
# apt-get needs root (or password-less sudo); without it the script says what to run and
# the tests that need them skip (they fail instead when CI is set).
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

packages=()
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  say "prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}') already installed"
else
  packages+=(prometheus)
fi
# Fonts for the browser's screenshots as reviewers see them: Liberation stands in for
# Arial in MLflow's font stack (without it Chromium draws text with the emoji font's
# wide digits), Noto Color Emoji draws the report's status symbols.
if command -v chromium >/dev/null && [ -e /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ] &&
  [ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
  say "$(chromium --version 2>/dev/null | head -1) already installed"
else
  packages+=(chromium fonts-liberation fonts-noto-color-emoji)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      say "missing ${packages[*]}; installing needs root: run  sudo apt-get install ${packages[*]}"
      exit 0
    fi
  fi
  say "installing Debian's ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  # The prometheus package starts a service where systemd runs; the tests start their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $sudo systemctl stop prometheus || true
  fi
fi
