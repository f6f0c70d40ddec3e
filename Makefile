# modelgate: `make test` runs every test (unit and integration against a real MLflow),
# `make demo` runs the daemon against a local MLflow with sample models.
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m
FUZZTIME ?= 10s
MLFLOW_VENV ?= $(or $(MODELGATE_MLFLOW_VENV),.cache/mlflow-venv)

.PHONY: all build test test-compat test-long unit vet fuzz bench mlflow tools kube rules-test plugin-test demo screenshots clean

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/modelgate ./cmd/modelgate

# The MLflow server the integration tests start (scripts/install-mlflow.sh is a no-op
# when .cache/mlflow-venv already holds the pinned version).
mlflow:
	scripts/install-mlflow.sh

# helm (go install) and Debian's prometheus/promtool, for the chart and alert tests.
tools:
	scripts/install-tools.sh

# The real kube-apiserver and etcd the leader election tests run against, built from the
# Go module proxy into a cache outside the clone (scripts/build-kube.sh; minutes the first
# time, nothing after).
kube:
	scripts/build-kube.sh

# The alert rules: promtool's syntax check and unit tests (fires / stays quiet).
rules-test:
	promtool check rules charts/modelgate/rules/modelgate.rules.yml
	cd charts/modelgate/rules && promtool test rules modelgate.rules.test.yml

# MLflow on 127.0.0.1:5000 with three registered versions, and modelgate watching them.
demo:
	scripts/demo.sh

# The README's pictures: the browser test against a real MLflow UI writes each page it
# checks as a PNG into docs/images/ (Debian's chromium, from make tools).
screenshots: mlflow tools
	rm -f docs/images/failed-*.png
	MODELGATE_SCREENSHOTS=$(CURDIR)/docs/images go test -count=1 -run '^(TestReviewerPagesInBrowser|TestVerifiedVoteInBrowser)$$' ./cmd/modelgate

vet:
	@unformatted=$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	cd charts && go vet ./...

# Every test: unit tests, integration tests against a real MLflow server (and a real
# Prometheus, helm), the alert rule tests, and each fuzz target for FUZZTIME. Set
# CI=true to make a missing tool a failure, not a skip.
test: mlflow tools kube vet
	@if command -v promtool >/dev/null; then $(MAKE) --no-print-directory rules-test; \
	  elif [ -n "$$CI" ]; then echo "promtool missing" >&2; exit 1; \
	  else echo "promtool missing: alert rule tests skipped (make tools)"; fi
	go test $(GO_TEST_FLAGS) ./...
	cd charts && go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory plugin-test
	$(MAKE) --no-print-directory fuzz

# The tests of MLflow's REST surface (client, reconciler, daemon start-up) against every
# supported MLflow release: 2.22.5, 3.0.1, 3.3.2 and 3.18.0, each in its own environment
# under .cache/ (scripts/test-compat.sh; MLFLOW_COMPAT_VERSIONS="3.3.2" for one).
test-compat:
	GO_TEST_FLAGS='$(GO_TEST_FLAGS)' scripts/test-compat.sh

# The modelgate-auth MLflow app's own tests (pytest, against a real MLflow server).
plugin-test: mlflow
	$(MLFLOW_VENV)/bin/python -m pytest -q mlflow/modelgate-auth/tests

# The long soaks, beside make test: modelgate killed with SIGKILL 200 times while a write
# is on the wire (make test runs 20).
test-long: mlflow
	MODELGATE_SIGKILLS=200 go test $(GO_TEST_FLAGS) -run '^TestSIGKILLWhileWriting$$' -v ./cmd/modelgate

# Unit tests only: -short skips everything that needs a real MLflow server; the
# reconciler's state machine runs on the in-memory registry.
unit:
	go test -short -count=1 ./...

# Each fuzz target of every package for FUZZTIME (longer runs: make fuzz FUZZTIME=10m).
# The targets are listed by `go test -list`, so a new one runs without being added here.
fuzz:
	@set -e; for pkg in $$(go list ./...); do \
	  listed=$$(go test -list '^Fuzz' $$pkg); \
	  for target in $$(echo "$$listed" | grep '^Fuzz' || true); do \
	    echo "go test -run '^$$' -fuzz '^$$target\$$' -fuzztime $(FUZZTIME) $$pkg"; \
	    go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The benchmark suite (not pass/fail): scripts/bench.sh, figures in docs/performance.md.
bench:
	scripts/bench.sh

clean:
	rm -rf bin
