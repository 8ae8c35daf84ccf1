//go:build e2e

// Package e2e runs the signer as it runs in AWS: the bootstrap binary under
// the Lambda runtime interface emulator, on Debian's docker-registry,
// local-kms and dynalite, and checks what it writes with the real cosign
// v2.6.5 and v3.1.3. Run it with `make e2e`.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/internal/pipeline"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
)

type stack struct {
	registry string
	kms      *testenv.KMS
	dyn      *testenv.Dynamo
	lambdas  []string // invoke URLs: several execution environments
	pub      string   // path of the KMS public key PEM
}

func newStack(t *testing.T, environments int) *stack {
	t.Helper()
	testenv.AWSEnv(t)
	s := &stack{registry: testenv.DockerRegistry(t), kms: testenv.StartKMS(t), dyn: testenv.StartDynamo(t)}
	s.pub = filepath.Join(t.TempDir(), "signet.pub")
	if err := os.WriteFile(s.pub, s.kms.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	bootstrap := testenv.BuildSigner(t)
	env := []string{
		"SIGNET_KMS_KEY=" + s.kms.KeyRef, "SIGNET_TABLE=" + s.dyn.Table, "SIGNET_REGISTRY=" + s.registry,
		"AWS_ENDPOINT_URL_KMS=" + s.kms.Endpoint, "AWS_ENDPOINT_URL_DYNAMODB=" + s.dyn.Endpoint,
	}
	for range environments {
		s.lambdas = append(s.lambdas, testenv.Lambda(t, bootstrap, env))
	}
	return s
}

func (s *stack) push(t *testing.T, repo, tag string, img v1.Image) name.Digest {
	t.Helper()
	return testenv.Push(t, s.registry, repo, tag, img)
}

// event fills a sample from events/ with the repository, digest and tag.
func event(t *testing.T, sample, repo, digest, tag string) []byte {
	t.Helper()
	return testenv.Event(t, sample, "e2e-"+digest[7:19], repo, digest, tag)
}

// invoke POSTs an event to one execution environment and decodes the answer.
func invoke(t *testing.T, url string, ev []byte) pipeline.Result {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(ev))
	if err != nil {
		t.Fatalf("invoking the signer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var res pipeline.Result
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" || bytes.Contains(body, []byte(`"errorMessage"`)) || json.Unmarshal(body, &res) != nil {
		t.Fatalf("signer answered %d %s: %s", resp.StatusCode, resp.Header.Get("X-Amz-Function-Error"), body)
	}
	return res
}

func layerCount(t *testing.T, tag name.Tag) int {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatalf("reading %s: %v", tag, err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return len(m.Layers)
}

func tags(t *testing.T, repo name.Repository) []string {
	t.Helper()
	ts, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestSignOnPushUnderLambdaRuntime(t *testing.T) {
	s := newStack(t, 5)
	ctx := context.Background()
	img, _ := random.Image(1024, 2)
	ref := s.push(t, "team/api", "1.4", img)

	// Someone signed it with cosign and another key before signet saw the push.
	c2 := testenv.NewCosign(t, testenv.Cosign2Version)
	otherKey, otherPub := c2.GenerateKeyPair(t)
	c2.Sign(t, otherKey, ref.String(), true)

	res := invoke(t, s.lambdas[0], event(t, "push.json", "team/api", ref.DigestStr(), "1.4"))
	if res.Outcome != "SIGNED" || res.Signature == "" || res.Attestation == "" {
		t.Fatalf("signer answered %+v, want SIGNED with signature and attestation", res)
	}

	for _, version := range []string{testenv.Cosign2Version, testenv.Cosign3Version} {
		c := testenv.NewCosign(t, version)
		if out, code := c.Verify(t, s.pub, ref.String()); code != 0 {
			t.Errorf("cosign %s verify --key <KMS public key> exited %d:\n%s", version, code, out)
		}
		if out, code := c.VerifyAttestation(t, s.pub, ref.String(), "https://slsa.dev/verification_summary/v1"); code != 0 {
			t.Errorf("cosign %s verify-attestation exited %d:\n%s", version, code, out)
		}
		if out, code := c.Verify(t, otherPub, ref.String()); code != 0 {
			t.Errorf("cosign %s verify of the earlier signature exited %d:\n%s", version, code, out)
		}
	}
	_, strangerPub := c2.GenerateKeyPair(t)
	if _, code := c2.Verify(t, strangerPub, ref.String()); code == 0 {
		t.Errorf("cosign verify with a key that signed nothing exited 0")
	}
	v, err := s.dyn.Store.Get(ctx, ref.Context().Name(), ref.DigestStr())
	if err != nil || v.Outcome != verdict.Signed || v.SignatureDigest != res.Signature {
		t.Fatalf("verdict = %+v, %v; want SIGNED with signature %s", v, err, res.Signature)
	}

	// signet's own .sig and .att pushes come back as events: nothing changes.
	before := tags(t, ref.Context())
	for _, tag := range []name.Tag{oci.SignatureTag(ref), oci.AttestationTag(ref)} {
		d, err := remote.Head(tag)
		if err != nil {
			t.Fatal(err)
		}
		res := invoke(t, s.lambdas[1], event(t, "push-sig-tag.json", "team/api", d.Digest.String(), tag.TagStr()))
		if res.Outcome != pipeline.Skipped || !strings.Contains(res.Reason, "signature artifact") {
			t.Errorf("event for %s: %+v, want skipped as a signature artifact", tag.TagStr(), res)
		}
	}
	if after := tags(t, ref.Context()); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("tags changed after signet's own pushes: %v -> %v", before, after)
	}

	// Input that is not an event comes back as a function error: Lambda
	// retries it and the on-failure destination keeps it.
	resp, err := http.Post(s.lambdas[2], "application/json", strings.NewReader("{not json"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// The emulator answers 200 with the function's error object.
	if !strings.Contains(string(body), `"errorMessage":"malformed event`) {
		t.Errorf("malformed event: answer %d %s, want the function's error, so the event is handed back", resp.StatusCode, body)
	}

	// The same event 10 times, then 10 times concurrently across 5 execution
	// environments: still the earlier signature plus exactly one of signet's.
	ev := event(t, "push.json", "team/api", ref.DigestStr(), "1.4")
	for i := range 10 {
		invoke(t, s.lambdas[i%len(s.lambdas)], ev)
	}
	// The emulator, like Lambda, runs one invocation at a time per execution
	// environment (and crashes when sent two), so each environment takes
	// its deliveries in turn while the environments run concurrently.
	busy := make([]sync.Mutex, len(s.lambdas))
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			n := i % len(s.lambdas)
			busy[n].Lock()
			defer busy[n].Unlock()
			invoke(t, s.lambdas[n], ev)
		})
	}
	wg.Wait()
	if n := layerCount(t, oci.SignatureTag(ref)); n != 2 {
		t.Errorf(".sig has %d layers after 21 deliveries, want 2 (the earlier cosign signature and signet's)", n)
	}
	if n := layerCount(t, oci.AttestationTag(ref)); n != 1 {
		t.Errorf(".att has %d layers after 21 deliveries, want 1", n)
	}
	hist, err := s.dyn.Store.History(ctx, ref.Context().Name(), ref.DigestStr())
	if err != nil || len(hist) != 1 {
		t.Errorf("audit trail has %d entries (%v), want 1", len(hist), err)
	}
}

func TestMultiArchIndexUnderLambdaRuntime(t *testing.T) {
	s := newStack(t, 1)
	ctx := context.Background()
	amd, _ := random.Image(512, 1)
	arm, _ := random.Image(512, 1)
	ref := testenv.PushIndex(t, s.registry, "team/multi", "3.0",
		testenv.IndexEntry{Image: amd, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}},
		testenv.IndexEntry{Image: arm, Platform: v1.Platform{OS: "linux", Architecture: "arm64"}})

	res := invoke(t, s.lambdas[0], event(t, "push.json", "team/multi", ref.DigestStr(), "3.0"))
	if res.Outcome != "SIGNED" || len(res.Platforms) != 2 {
		t.Fatalf("signer answered %+v, want SIGNED with 2 platforms", res)
	}
	c2 := testenv.NewCosign(t, testenv.Cosign2Version)
	for _, img := range []v1.Image{amd, arm} {
		d, _ := img.Digest()
		pref := ref.Context().Digest(d.String())
		if out, code := c2.Verify(t, s.pub, pref.String()); code != 0 {
			t.Errorf("cosign verify of platform %s exited %d:\n%s", d, code, out)
		}
		v, err := s.dyn.Store.Get(ctx, pref.Context().Name(), pref.DigestStr())
		if err != nil || v.Outcome != verdict.Signed || v.IndexDigest != ref.DigestStr() {
			t.Errorf("platform verdict = %+v, %v; want SIGNED linked to %s", v, err, ref.DigestStr())
		}
	}
	if out, code := c2.Verify(t, s.pub, ref.String()); code != 0 {
		t.Errorf("cosign verify of the index exited %d:\n%s", code, out)
	}
}
