package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-dev/signet/internal/ecrevent"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/internal/pipeline"
	"github.com/signet-dev/signet/internal/signing"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
)

// signetAgent is the User-Agent prefix of the benchmark's pipeline, and
// cosignAgent that of the cosign CLI, to count each one's registry requests.
const (
	signetAgent = "signet/bench"
	cosignAgent = "cosign/"
)

// BenchmarkPerImage signs and attests freshly pushed images two ways, on the
// same registry and the same local-kms key:
//
//   - signet: pipeline.Handle on the image's push event (events/push.json
//     filled in, parsed by ecrevent): resolve the digest, sign, append to
//     the .sig tag, attest (SLSA verification summary in DSSE), append to
//     the .att tag, with the digest locked and the verdict recorded in
//     dynalite.
//   - cosign CLI: what a user would run instead, cosign v2.6.5 `sign --key
//     awskms:///alias/signet-test` then `attest --key ... --type
//     https://slsa.dev/verification_summary/v1`, offline (testenv.Cosign).
//     cosign records no verdict.
//
// Each iteration pushes two images (not timed) and gives one to each, in
// turn first, so that both see the same load on a shared machine: the ratio
// is what to read. It runs on Debian's docker-registry 2.8 (the headline)
// and on the in-process registry (almost free requests, to show how much of
// each figure is the registry). It reports per image signet-ms and
// cosign-ms, their ratio, the registry's HTTP requests of each, signet's
// time in KMS and in the verdict table, cosign's time in sign and in attest,
// and what starting the CLI costs (`cosign version`).
func BenchmarkPerImage(b *testing.B) {
	testenv.AWSEnv(b)
	k := testenv.StartKMS(b)
	dyn := testenv.StartDynamo(b)
	registries := []struct {
		name  string
		start func(testing.TB) testRegistry
	}{
		{"docker-registry", dockerRegistry},
		{"in-process", inProcessRegistry},
	}
	for _, r := range registries {
		b.Run(r.name, func(b *testing.B) { benchPerImage(b, r.start(b), k, dyn) })
	}
}

func benchPerImage(b *testing.B, reg testRegistry, k *testenv.KMS, dyn *testenv.Dynamo) {
	ctx := context.Background()
	signer, err := signing.NewKMS(ctx, k.KeyRef)
	if err != nil {
		b.Fatal(err)
	}
	client, err := oci.New(oci.WithUserAgent(signetAgent))
	if err != nil {
		b.Fatal(err)
	}
	var st stageTimes
	p, err := pipeline.New(client, timedSigner{Signer: signer, t: &st},
		timedStore{Store: verdict.NewDynamoStore(dyn.Client, dyn.Table), t: &st},
		pipeline.WithRegistry(reg.host), pipeline.WithVersion("bench"))
	if err != nil {
		b.Fatal(err)
	}
	c := testenv.NewCosign(b, testenv.Cosign2Version)
	pred := filepath.Join(b.TempDir(), "predicate.json")

	// signet handles the push event of ref.
	signet := func(ref name.Digest, raw []byte) {
		t, err := ecrevent.Parse(raw)
		if err != nil {
			b.Fatalf("parsing the push event of %s: %v", ref, err)
		}
		res, err := p.Handle(ctx, t)
		if err != nil || res.Outcome != string(verdict.Signed) {
			b.Fatalf("Handle(push of %s) = %+v, %v; want %s", ref, res, err, verdict.Signed)
		}
	}
	var sign, attest time.Duration
	// cosign signs and attests ref as a user would.
	cosign := func(ref name.Digest) {
		start := time.Now()
		c.Sign(b, k.KeyRef, ref.String(), true)
		mid := time.Now()
		c.Attest(b, k.KeyRef, ref.String(), signing.VSAPredicateType, pred, true)
		sign, attest = sign+mid.Sub(start), attest+time.Since(mid)
	}

	signetReqs, cosignReqs := reg.requests(signetAgent), reg.requests(cosignAgent)
	var signetTime, cosignTime time.Duration
	var lastSignet, lastCosign name.Digest
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		tag := fmt.Sprintf("v%d-%d", b.N, i)
		sref := pushFresh(b, reg.host, "bench/signet", tag)
		raw := pushEvent(b, fmt.Sprintf("bench-%d-%d", b.N, i), sref, tag)
		cref := pushFresh(b, reg.host, "bench/cosign", tag)
		writePredicate(b, pred, cref.Context().Name()+"@"+cref.DigestStr())
		lastSignet, lastCosign = sref, cref
		b.StartTimer()

		for j := range 2 {
			start := time.Now()
			if (i+j)%2 == 0 {
				signet(sref, raw)
				signetTime += time.Since(start)
			} else {
				cosign(cref)
				cosignTime += time.Since(start)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(perImage(b, signetTime), "signet-ms/image")
	b.ReportMetric(perImage(b, cosignTime), "cosign-ms/image")
	b.ReportMetric(float64(cosignTime)/float64(signetTime), "cosign/signet")
	b.ReportMetric(perImage(b, st.kms), "signet-kms-ms/image")
	b.ReportMetric(perImage(b, st.store), "signet-dynamo-ms/image")
	b.ReportMetric(float64(settled(reg, signetAgent)-signetReqs)/float64(b.N), "signet-requests/image")
	b.ReportMetric(perImage(b, sign), "cosign-sign-ms/image")
	b.ReportMetric(perImage(b, attest), "cosign-attest-ms/image")
	b.ReportMetric(float64(settled(reg, cosignAgent)-cosignReqs)/float64(b.N), "cosign-requests/image")
	b.ReportMetric(startupMillis(b, c), "cosign-startup-ms")
	signedTags(b, lastSignet)
	signedTags(b, lastCosign)
}

// settled counts agent's requests once the count stops changing: a
// registry may log a request just after answering it.
func settled(reg testRegistry, agent string) int {
	n := reg.requests(agent)
	for {
		time.Sleep(50 * time.Millisecond)
		m := reg.requests(agent)
		if m == n {
			return n
		}
		n = m
	}
}

// perImage is d per iteration in milliseconds.
func perImage(b *testing.B, d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond) / float64(b.N)
}

// startupMillis is the median time of `cosign version` over three runs: what
// starting the CLI costs before it does any work.
func startupMillis(b *testing.B, c *testenv.Cosign) float64 {
	var ms []float64
	for range 3 {
		start := time.Now()
		c.MustRun(b, nil, "version")
		ms = append(ms, float64(time.Since(start))/float64(time.Millisecond))
	}
	return median(ms)
}

// writePredicate writes a SLSA verification summary like the one signet
// attests (internal/signing), for resource, to path.
func writePredicate(b testing.TB, path, resource string) {
	b.Helper()
	pred := map[string]any{
		"verifier":           map[string]string{"id": "https://github.com/signet-dev/signet"},
		"timeVerified":       time.Now().UTC().Truncate(time.Second).Format(time.RFC3339),
		"resourceUri":        resource,
		"policy":             map[string]string{"uri": "signet:policy/default#sign"},
		"verificationResult": "PASSED",
		"verifiedLevels":     []string{"SLSA_BUILD_LEVEL_0"},
	}
	raw, err := json.Marshal(pred)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		b.Fatal(err)
	}
}
