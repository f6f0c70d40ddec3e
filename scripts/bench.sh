#!/usr/bin/env bash
# The benchmark suite in one command: installs the pinned MLflow when missing, then runs
# every benchmark of scripts/bench against fresh MLflow servers on 127.0.0.1 and writes
# the results to stdout and to .cache/bench/<timestamp>.txt.
#
#   scripts/bench.sh                 # idle, backfill, latency (about 20 minutes on 2 CPUs)
#   scripts/bench.sh backfill -runs 5
#   BENCH_MLFLOW_WORKERS=1 scripts/bench.sh backfill
#   BENCH_MLFLOW_AUTH=1 scripts/bench.sh backfill     # against MLflow with basic-auth
#   BENCH_MLFLOW_STORE=postgres scripts/bench.sh backfill   # MLflow on PostgreSQL (Debian's postgresql)
#
# Not part of CI's pass/fail: timings on shared machines are noisy. docs/performance.md
# records the method and the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-mlflow.sh >&2
if [ "${BENCH_MLFLOW_STORE:-}" = postgres ]; then
  # MLflow's PostgreSQL driver; the tests do not need it, so only the benchmark installs it.
  "${MODELGATE_MLFLOW_VENV:-.cache/mlflow-venv}/bin/python" -m pip install --quiet --disable-pip-version-check psycopg2-binary >&2
fi
mkdir -p .cache/bench
out=".cache/bench/$(date -u +%Y%m%dT%H%M%SZ).txt"
if [ $# -eq 0 ]; then set -- all; fi
go run ./scripts/bench "$@" 2>&1 | tee "$out"
echo "results: $out" >&2
