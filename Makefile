# modelgate: `make test` runs every test (unit and integration against a real MLflow),
# `make demo` runs the daemon against a local MLflow with sample models.
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m
FUZZTIME ?= 10s

.PHONY: all build test unit vet fuzz mlflow demo clean

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o bin/modelgate ./cmd/modelgate

# The MLflow server the integration tests start (scripts/install-mlflow.sh is a no-op
# when .cache/mlflow-venv already holds the pinned version).
mlflow:
	scripts/install-mlflow.sh

# MLflow on 127.0.0.1:5000 with three registered versions, and modelgate watching them.
demo:
	scripts/demo.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

# Every test: unit tests, integration tests against a real MLflow server, and the fuzz
# targets' seed corpora. Set CI=true to make a missing MLflow a failure, not a skip.
test: mlflow vet
	go test $(GO_TEST_FLAGS) ./...

# Unit tests only: -short skips everything that needs a real MLflow server.
unit:
	go test -short -count=1 ./...

# Each fuzz target for FUZZTIME (longer runs: make fuzz FUZZTIME=10m).
fuzz:
	go test -run '^$$' -fuzz '^FuzzDecodeResponse$$' -fuzztime $(FUZZTIME) ./mlflow

clean:
	rm -rf bin
