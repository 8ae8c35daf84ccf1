# signet: see README.md. Every target runs on loopback only.
SHELL := /bin/bash
export GOFLAGS := -mod=mod
export CDK_DISABLE_CLI_TELEMETRY := true
TOOLS ?= $(HOME)/.cache/signet/tools
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/signet-dev/signet/internal/version.Version=$(VERSION)

.PHONY: all build lambda tools test test-go e2e demo bench stack-up stack-down synth deploy fuzz clean

# Each area adds its own targets in mk/*.mk and appends to EXTRA_TESTS,
# EXTRA_E2E and EXTRA_BENCH, which the targets below run.
EXTRA_TESTS :=
EXTRA_E2E :=
EXTRA_BENCH :=
-include mk/*.mk

all: build

tools: ## install the emulators, registry and cosign (cached under $(TOOLS))
	bash scripts/tools.sh base

build: ## build the CLI for this machine
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/signet ./cmd/signet

lambda: ## build the signer Lambda for provided.al2023 on arm64
	mkdir -p dist/signer
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -tags lambda.norpc -ldflags '$(LDFLAGS)' -o dist/signer/bootstrap ./functions/signer

test: tools test-go $(EXTRA_TESTS) ## all unit and integration tests

test-go: ## unit and integration tests against in-process registry, local-kms and dynalite
	go vet ./...
	go test -count=1 ./...

clean:
	rm -rf bin dist .local cdk.out infra/cdk.out

stack-up: ## start the local stack and write .local/stack.env
	bash scripts/stack.sh up

stack-down: ## stop the local stack
	bash scripts/stack.sh down

demo: ## the main job end to end on the local stack
	bash scripts/demo.sh
