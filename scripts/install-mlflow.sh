#!/usr/bin/env bash
# Creates the Python virtual environment with the MLflow server that the integration
# tests, the demo and the benchmarks run: mlflow==3.18.0 with the basic-auth extra, and
# the modelgate-auth app of this tree (mlflow/modelgate-auth) with pytest for its tests.
# Re-uses the environment when it already holds that version.
#
#   scripts/install-mlflow.sh            # into .cache/mlflow-venv
#   MODELGATE_MLFLOW_VENV=/opt/mlflow scripts/install-mlflow.sh
set -euo pipefail

# The pinned release; MLFLOW_VERSION=2.22.5 (say) installs another one into its own
# environment, .cache/mlflow-2.22.5-venv, for the compatibility tests.
PINNED=3.18.0
MLFLOW_VERSION=${MLFLOW_VERSION:-$PINNED}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$MLFLOW_VERSION" = "$PINNED" ]; then
  venv=${MODELGATE_MLFLOW_VENV:-$root/.cache/mlflow-venv}
else
  venv=${MODELGATE_MLFLOW_VENV:-$root/.cache/mlflow-$MLFLOW_VERSION-venv}
fi

say() { printf 'install-mlflow: %s\n' "$*" >&2; }

installed() {
  [ -x "$venv/bin/mlflow" ] || return 1
  [ "$("$venv/bin/python" -c 'import mlflow; print(mlflow.__version__)' 2>/dev/null)" = "$MLFLOW_VERSION" ] || return 1
  # The server's store must import (an incompatible SQLAlchemy fails here, not at start).
  "$venv/bin/python" -c 'import flask_wtf, sklearn, mlflow.store.db.utils' 2>/dev/null
}

# The modelgate-auth app (mlflow/modelgate-auth) and its test tools, installed into the
# same environment on every run, so the server always runs the tree's plugin.
install_plugin() {
  # The plugin wraps the pinned release's basic-auth; other releases run without it.
  [ "$MLFLOW_VERSION" = "$PINNED" ] || return 0
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check pytest requests
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$root/mlflow/modelgate-auth"
  rm -rf "$root/mlflow/modelgate-auth/build" "$root"/mlflow/modelgate-auth/*.egg-info
  "$venv/bin/python" -c 'import modelgate_auth' || { say "modelgate-auth did not install into $venv"; exit 1; }
  say "modelgate-auth installed in $venv (mlflow server --app-name modelgate-auth)"
}

if installed; then
  say "MLflow $MLFLOW_VERSION already in $venv"
  install_plugin
  exit 0
fi

# MLflow 3.18 needs Python 3.10 or newer.
python=""
for cand in "${MODELGATE_PYTHON:-}" python3.13 python3.12 python3.11 python3.10 python3; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
  if "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
    python=$cand
    break
  fi
done
[ -n "$python" ] || { say "no Python 3.10+ found: install python3 (Debian: apt-get install python3 python3-venv)"; exit 1; }

say "creating $venv with $("$python" --version 2>&1)"
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

# Releases before the pinned one allow SQLAlchemy up to 3, but import names that
# SQLAlchemy 2.1 removed (2.22.5, 3.0.1, 3.3.2: "cannot import name
# 'FallbackAsyncAdaptedQueuePool'", and the server does not start): hold them below 2.1.
constraints=()
[ "$MLFLOW_VERSION" = "$PINNED" ] || constraints=("sqlalchemy<2.1")

pip_log=$(mktemp)
if "${pip[@]}" "mlflow[auth]==$MLFLOW_VERSION" "${constraints[@]}" 2>"$pip_log"; then
  rm -f "$pip_log"
elif ! grep -q 'mlflow-\(skinny\|tracing\)==' "$pip_log"; then
  cat "$pip_log" >&2
  say "pip install mlflow[auth]==$MLFLOW_VERSION failed (see above)"
  exit 1
else
  rm -f "$pip_log"
  # The package index this was written on carries mlflow 3.18.0 but not the matching
  # mlflow-skinny / mlflow-tracing releases it pins. The mlflow wheel holds the whole
  # `mlflow` Python package (server, stores, client), so install it without resolving its
  # pins and give it the dependencies those two packages would have brought, taken from
  # the newest mlflow-skinny the index has. `mlflow --version` still reports 3.18.0 and
  # the server is 3.18.0's code.
  say "pip could not resolve mlflow==$MLFLOW_VERSION (mlflow-skinny/mlflow-tracing $MLFLOW_VERSION missing from the index): installing the mlflow wheel with its dependencies listed by hand"
  dl=$(mktemp -d)
  trap 'rm -rf "$dl"' EXIT
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps -d "$dl" "mlflow==$MLFLOW_VERSION" "mlflow-skinny<=$MLFLOW_VERSION"
  "$venv/bin/python" - "$dl" >"$dl/requirements.txt" <<'PY'
import glob, re, sys, zipfile
reqs = set()
for wheel in glob.glob(sys.argv[1] + "/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for line in z.read(meta).decode().splitlines():
            if not line.startswith("Requires-Dist: "):
                continue
            req, _, marker = line[len("Requires-Dist: "):].partition(";")
            req, marker = req.strip(), marker.strip()
            if re.match(r"mlflow-(skinny|tracing)\b", req):
                continue
            if not marker or marker == 'platform_system != "Windows"' or marker == 'extra == "auth"':
                reqs.add(req)
print("\n".join(sorted(reqs)))
PY
  "${pip[@]}" -r "$dl/requirements.txt"
  "${pip[@]}" --no-deps "$dl"/mlflow-"$MLFLOW_VERSION"-*.whl
fi

installed || { say "installation in $venv is incomplete: mlflow $MLFLOW_VERSION, Flask-WTF or scikit-learn cannot be imported"; exit 1; }
install_plugin
say "MLflow $("$venv/bin/mlflow" --version 2>/dev/null | awk '{print $NF}') ready in $venv"
