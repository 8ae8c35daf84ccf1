# signet: see README.md. Every target runs on loopback only.
SHELL := /bin/bash
export GOFLAGS := -mod=mod
export CDK_DISABLE_CLI_TELEMETRY := true
TOOLS ?= $(HOME)/.cache/signet/tools
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/signet-dev/signet/internal/version.Version=$(VERSION)

.PHONY: all build image lambda tools cosign test test-go e2e e2e-signer demo bench stack-up stack-down synth deploy fuzz clean

# Each area adds its own targets in mk/*.mk and appends to EXTRA_TESTS,
# EXTRA_E2E and EXTRA_BENCH, which the targets below run.
EXTRA_TESTS :=
EXTRA_E2E :=
EXTRA_BENCH :=
-include mk/*.mk

all: build

tools: ## install the emulators, registry and cosign (cached under $(TOOLS))
	bash scripts/tools.sh base
	bash scripts/tools.sh cosign

build: ## build the CLI for this machine
	go build -trimpath -ldflags '$(LDFLAGS)' -o bin/signet ./cmd/signet

image: ## build and push the webhook image (IMAGE=registry/repo:tag), no Docker needed
	@test -n "$(IMAGE)" || { echo 'make image: set IMAGE, e.g. IMAGE=<account>.dkr.ecr.<region>.amazonaws.com/signet-webhook:<version>' >&2; exit 2; }
	go run ./cmd/signet-image -image '$(IMAGE)' -version '$(VERSION)'

lambda: ## build the signer Lambda for provided.al2023 on arm64
	mkdir -p dist/signer
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -tags lambda.norpc -ldflags '$(LDFLAGS)' -o dist/signer/bootstrap ./functions/signer

test: tools test-go $(EXTRA_TESTS) ## all unit and integration tests

test-go: ## unit and integration tests against in-process registry, local-kms and dynalite
	go vet ./...
	go test -count=1 ./...
bench: $(EXTRA_BENCH) ## benchmarks; figures in docs/benchmarks.md

e2e: tools cosign e2e-signer $(EXTRA_E2E) ## end-to-end: the Lambda under the runtime emulator, real cosign, real kube-apiserver

e2e-signer: ## the signer's bootstrap under aws-lambda-rie on docker-registry, checked by cosign v2.6.5 and v3.1.3
	go test -tags e2e -count=1 ./test/e2e/

cosign: ## build cosign v2.6.5 and v3.1.3 once (cached under $(TOOLS))
	bash scripts/tools.sh cosign

fuzz: ## fuzz every parser of outside input for FUZZTIME each (default 30s); seeds run in make test
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),30s) ./internal/ecrevent/
	go test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),30s) ./internal/policy/
	go test -run '^$$' -fuzz '^FuzzBundle$$' -fuzztime $(or $(FUZZTIME),30s) ./internal/verify/
	go test -run '^$$' -fuzz '^FuzzLegacy$$' -fuzztime $(or $(FUZZTIME),30s) ./internal/verify/
	go test -run '^$$' -fuzz '^FuzzReview$$' -fuzztime $(or $(FUZZTIME),30s) ./internal/admission/

clean:
	rm -rf bin dist .local cdk.out infra/cdk.out

stack-up: ## start the local stack and write .local/stack.env
	bash scripts/stack.sh up

stack-down: ## stop the local stack
	bash scripts/stack.sh down

demo: ## the main job end to end on the local stack
	bash scripts/demo.sh
