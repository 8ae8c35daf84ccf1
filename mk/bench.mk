# bench: the signer's benchmarks in test/bench (signet vs the cosign CLI per
# image, the Lambda's size and cold start); docs/benchmarks.md has the
# figures and how to read them. Everything runs on 127.0.0.1: Debian's
# docker-registry, local-kms, dynalite, cosign v2.6.5 and aws-lambda-rie.

# Images per side, and execution environments for the cold start.
BENCH_SIGNER_IMAGES ?= 20
BENCH_SIGNER_COLD ?= 8
BENCH_SIGNER_OUT := .local/bench/signer.txt

.PHONY: bench-signer

bench-signer: lambda ## signer: signet vs cosign sign+attest per image, Lambda size and cold start (~2 min)
	bash scripts/tools.sh base
	bash scripts/tools.sh cosign
	mkdir -p $(dir $(BENCH_SIGNER_OUT))
	set -o pipefail; { \
	  go test -count=1 -timeout 20m -run '^$$' -bench '^BenchmarkPerImage$$' -benchtime $(BENCH_SIGNER_IMAGES)x ./test/bench && \
	  go test -count=1 -timeout 20m -run '^$$' -bench '^BenchmarkColdStart$$' -benchtime $(BENCH_SIGNER_COLD)x ./test/bench; \
	} | go run ./test/bench/report | tee $(BENCH_SIGNER_OUT)

EXTRA_BENCH += bench-signer
