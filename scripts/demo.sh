#!/usr/bin/env bash
# make demo: MLflow on 127.0.0.1:5000 with a SQLite store under .cache/demo, three
# versions of a credit-scoring model registered by the MLflow client, and modelgate
# running against them with examples/modelgate.yaml. Ctrl-C stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port=${MODELGATE_DEMO_PORT:-5000}
hook_port=${MODELGATE_DEMO_HOOK_PORT:-5099}
dir=$root/.cache/demo
uri=http://127.0.0.1:$port
say() { printf '\n== %s\n' "$*"; }

scripts/install-mlflow.sh
py=$root/.cache/mlflow-venv/bin/python
for p in "$port" "$hook_port"; do
  if "$py" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $p)) != 0)"; then
    echo "demo: port $p is in use; stop what listens there or set MODELGATE_DEMO_PORT / MODELGATE_DEMO_HOOK_PORT" >&2
    exit 1
  fi
done

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  echo "demo: stopped MLflow and modelgate (the store stays in $dir)"
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM # Ctrl-C is how the demo ends

rm -rf "$dir" && mkdir -p "$dir"
say "Building modelgate"
go build -o "$dir/modelgate" ./cmd/modelgate

say "Starting MLflow $("$root/.cache/mlflow-venv/bin/mlflow" --version | awk '{print $NF}') on $uri (log: $dir/mlflow.log)"
setsid "$root/.cache/mlflow-venv/bin/mlflow" server --backend-store-uri "sqlite:///$dir/mlflow.db" \
  --default-artifact-root "$dir/artifacts" --host 127.0.0.1 --port "$port" --workers 1 >"$dir/mlflow.log" 2>&1 &
pids+=($!)
for _ in $(seq 240); do curl -fs "$uri/health" >/dev/null 2>&1 && break; sleep 0.5; done
curl -fs "$uri/health" >/dev/null || { echo "demo: MLflow did not start; see $dir/mlflow.log" >&2; exit 1; }

setsid "$py" examples/demo/receiver.py "$hook_port" &
pids+=($!)

say "Training and registering models (examples/demo/seed.py)"
MLFLOW_TRACKING_URI=$uri GIT_PYTHON_REFRESH=quiet "$py" examples/demo/seed.py 2>&1 | grep -E '^(Registering|  registered)'

say "Starting modelgate run with examples/modelgate.yaml"
# A signing key for the demo's records (a real deployment keeps one key in a secret).
key_file=$dir/signing-key
[ -s "$key_file" ] || openssl rand -hex 32 >"$key_file"
MLFLOW_TRACKING_URI=$uri MODELGATE_POLICY=examples/modelgate.yaml MODELGATE_POLL_INTERVAL=5s \
  MODELGATE_SIGNING_KEY=$(cat "$key_file") \
  MODELGATE_LOG_FORMAT=text MODELGATE_LISTEN_ADDR=127.0.0.1:9464 SLACK_WEBHOOK_URL=http://127.0.0.1:$hook_port/ \
  setsid "$dir/modelgate" run > >(sed -u 's/^/  [modelgate] /') 2>&1 &
pids+=($!)

GIT_PYTHON_REFRESH=quiet "$py" examples/demo/status.py "$uri" credit-scoring
wait
