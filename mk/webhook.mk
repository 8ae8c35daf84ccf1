# webhook: the deploy-time side of signet: `signet verdict`, the admission
# webhook, and its tests against dynalite, a real kube-apiserver, and cosign.
# docs/webhook.md explains the webhook; docs/benchmarks.md has the figures.

WEBHOOK_PKGS := ./cmd/signet ./internal/admission/... ./internal/imageref/... ./internal/cache/... ./internal/webhook/...

.PHONY: test-webhook e2e-webhook bench-webhook fuzz-webhook

test-webhook: ## webhook and CLI tests with the race detector (dynalite, in-process registry, local-kms)
	go vet $(WEBHOOK_PKGS)
	go test -race -count=1 $(WEBHOOK_PKGS)

e2e-webhook: ## the webhook registered with a real kube-apiserver + etcd (builds kube-apiserver once, ~7 min)
	bash scripts/tools.sh base
	bash scripts/tools.sh kube
	go test -tags e2e -count=1 -run '^TestE2E$$' -v ./internal/admission/

bench-webhook: ## admission of a 3-container pod vs cosign verify of the same images, and webhook throughput
	bash scripts/tools.sh base
	bash scripts/tools.sh cosign
	go test -run '^$$' -bench . -benchtime 2s -count 1 ./internal/webhook/

fuzz-webhook: ## fuzz AdmissionReview decoding for FUZZTIME (default 60s)
	go test -run '^$$' -fuzz '^FuzzReview$$' -fuzztime $(or $(FUZZTIME),60s) ./internal/admission/

EXTRA_TESTS += test-webhook
EXTRA_E2E += e2e-webhook
EXTRA_BENCH += bench-webhook
