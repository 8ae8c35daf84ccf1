package signer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/ecrevent"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/internal/pipeline"
	"github.com/signet-dev/signet/internal/signer"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"ok", map[string]string{"SIGNET_KMS_KEY": "awskms:///alias/k", "SIGNET_TABLE": "t"}, ""},
		{"no key", map[string]string{"SIGNET_TABLE": "t"}, "SIGNET_KMS_KEY is required"},
		{"not a kms key", map[string]string{"SIGNET_KMS_KEY": "alias/k", "SIGNET_TABLE": "t"}, "must start with awskms://"},
		{"no table", map[string]string{"SIGNET_KMS_KEY": "awskms:///alias/k"}, "SIGNET_TABLE is required"},
		{"two policies", map[string]string{"SIGNET_KMS_KEY": "awskms:///alias/k", "SIGNET_TABLE": "t", "SIGNET_POLICY": "x", "SIGNET_POLICY_FILE": "y"}, "not both"},
		{"bad level", map[string]string{"SIGNET_KMS_KEY": "awskms:///alias/k", "SIGNET_TABLE": "t", "SIGNET_LOG_LEVEL": "loud"}, "SIGNET_LOG_LEVEL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signer.ConfigFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("ConfigFromEnv(%v) = %v, want error containing %q", tc.env, err, tc.wantErr)
			}
		})
	}
}

type env struct {
	host string
	kms  *testenv.KMS
	dyn  *testenv.Dynamo
	h    *signer.Handler
	logs *bytes.Buffer
}

// newEnv wires the signer exactly as the Lambda does (signer.Build), on
// the in-process registry, local-kms and dynalite.
func newEnv(t *testing.T, policy string) *env {
	t.Helper()
	testenv.AWSEnv(t)
	e := &env{host: testenv.Registry(t), kms: testenv.StartKMS(t), dyn: testenv.StartDynamo(t), logs: new(bytes.Buffer)}
	p, _, err := signer.Build(context.Background(), signer.Config{KMSKey: e.kms.KeyRef, Table: e.dyn.Table, Registry: e.host, Policy: policy}, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.h = signer.NewHandler(p, slog.New(slog.NewJSONHandler(e.logs, nil)))
	return e
}

func (e *env) push(t *testing.T, repo, tag string) name.Digest {
	t.Helper()
	return testenv.PushRandom(t, e.host, repo, tag, 256, 1)
}

// event reads a sample from events/ and points it at repo and digest.
func event(t *testing.T, file, repo, digest string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "events", file))
	if err != nil {
		t.Fatal(err)
	}
	const sample = "sha256:9b2d3c1a0e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff00112233"
	s := strings.ReplaceAll(string(raw), sample, digest)
	s = strings.ReplaceAll(s, `"team/api"`, `"`+repo+`"`)
	return []byte(s)
}

func TestSampleEventsThroughHandler(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	ref := e.push(t, "team/api", "1.4")
	// push.json signs it, so its .sig tag exists for push-sig-tag.json.
	steps := []struct {
		file        string
		digest      func() string
		wantOutcome string
		wantReason  string
		wantErr     bool
	}{
		{file: "push.json", digest: ref.DigestStr, wantOutcome: "SIGNED"},
		{file: "push-untagged.json", digest: ref.DigestStr, wantOutcome: "SIGNED"},
		{file: "push-sig-tag.json", digest: func() string {
			d, err := remote.Head(oci.SignatureTag(ref))
			if err != nil {
				t.Fatal(err)
			}
			return d.Digest.String()
		}, wantOutcome: pipeline.Skipped, wantReason: "signature artifact"},
		{file: "delete.json", digest: ref.DigestStr, wantOutcome: pipeline.Skipped, wantReason: "still in the repository"},
		{file: "push-failure.json", digest: ref.DigestStr, wantOutcome: pipeline.Skipped, wantReason: "FAILURE"},
		{file: "push-bad-digest.json", digest: ref.DigestStr, wantOutcome: pipeline.Skipped, wantReason: "not sha256"},
		{file: "scan.json", digest: ref.DigestStr, wantOutcome: pipeline.Skipped, wantReason: "ECR Image Scan"},
		{file: "malformed.json", digest: ref.DigestStr, wantErr: true},
	}
	for _, st := range steps {
		t.Run(st.file, func(t *testing.T) {
			e.logs.Reset()
			res, err := e.h.Handle(ctx, event(t, st.file, "team/api", st.digest()))
			if st.wantErr {
				if !errors.Is(err, ecrevent.ErrMalformed) {
					t.Fatalf("Handle(%s) error = %v, want ErrMalformed (retried, then dead-lettered)", st.file, err)
				}
				return
			}
			if err != nil || res.Outcome != st.wantOutcome || !strings.Contains(res.Reason, st.wantReason) {
				t.Fatalf("Handle(%s) = %+v, %v; want %s with reason containing %q", st.file, res, err, st.wantOutcome, st.wantReason)
			}
			// One structured log line per event, with the outcome.
			lines := strings.Split(strings.TrimSpace(e.logs.String()), "\n")
			var line map[string]any
			if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &line) != nil || line["outcome"] != st.wantOutcome {
				t.Errorf("Handle(%s) logged %q, want one JSON line with outcome %s", st.file, e.logs.String(), st.wantOutcome)
			}
		})
	}
	v, err := e.dyn.Store.Get(ctx, ref.Context().Name(), ref.DigestStr())
	if err != nil || v.Outcome != verdict.Signed {
		t.Fatalf("verdict = %+v, %v; want SIGNED", v, err)
	}
}

// TestCosignVerifiesSignetOutput is the interop promise: what signet writes
// verifies with cosign v2 and v3, signature and attestation, using only the
// KMS public key; and a signature cosign made earlier with another key stays.
func TestCosignVerifiesSignetOutput(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	ref := e.push(t, "team/api", "1.4")
	pub := filepath.Join(t.TempDir(), "signet.pub")
	if err := os.WriteFile(pub, e.kms.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := testenv.NewCosign(t, testenv.Cosign2Version)
	otherKey, otherPub := c2.GenerateKeyPair(t)
	c2.Sign(t, otherKey, ref.String(), true) // someone signed it before signet

	res, err := e.h.Handle(ctx, event(t, "push.json", "team/api", ref.DigestStr()))
	if err != nil || res.Outcome != "SIGNED" {
		t.Fatalf("Handle = %+v, %v", res, err)
	}
	for _, version := range []string{testenv.Cosign2Version, testenv.Cosign3Version} {
		c := testenv.NewCosign(t, version)
		if out, code := c.Verify(t, pub, ref.String()); code != 0 {
			t.Errorf("cosign %s verify --key signet.pub exited %d:\n%s", version, code, out)
		}
		if out, code := c.VerifyAttestation(t, pub, ref.String(), "https://slsa.dev/verification_summary/v1"); code != 0 {
			t.Errorf("cosign %s verify-attestation --key signet.pub exited %d:\n%s", version, code, out)
		}
		if out, code := c.Verify(t, otherPub, ref.String()); code != 0 {
			t.Errorf("cosign %s verify of the earlier signature exited %d:\n%s", version, code, out)
		}
	}
	// A key that signed nothing does not verify: the checks above can fail.
	_, strangerPub := c2.GenerateKeyPair(t)
	if _, code := c2.Verify(t, strangerPub, ref.String()); code == 0 {
		t.Errorf("cosign verify with an unrelated key exited 0")
	}
}

func TestVerifyMode(t *testing.T) {
	c2 := testenv.NewCosign(t, testenv.Cosign2Version)
	vendorKey, vendorPub := c2.GenerateKeyPair(t)
	pemBytes, err := os.ReadFile(vendorPub)
	if err != nil {
		t.Fatal(err)
	}
	indent := "      " + strings.ReplaceAll(strings.TrimSpace(string(pemBytes)), "\n", "\n      ")
	policy := "rules:\n  - name: vendor\n    repositories: [\"vendor/**\"]\n    mode: verify\n    keys:\n    - |\n" + indent + "\n" +
		"  - name: sandbox\n    repositories: [\"sandbox/*\"]\n    mode: ignore\ndefault:\n  mode: sign\n"
	e := newEnv(t, policy)
	ctx := context.Background()

	handle := func(t *testing.T, ref name.Digest, tag string) pipeline.Result {
		t.Helper()
		raw := event(t, "push.json", ref.Context().RepositoryStr(), ref.DigestStr())
		raw = []byte(strings.Replace(string(raw), `"image-tag": "1.4"`, `"image-tag": "`+tag+`"`, 1))
		res, err := e.h.Handle(ctx, raw)
		if err != nil {
			t.Fatalf("Handle: %v", err)
		}
		return res
	}

	t.Run("trusted key", func(t *testing.T) {
		ref := e.push(t, "vendor/db", "1")
		c2.Sign(t, vendorKey, ref.String(), true)
		res := handle(t, ref, "1")
		if res.Outcome != "VERIFIED" || res.Rule != "vendor" || res.Attestation == "" {
			t.Fatalf("Handle = %+v, want VERIFIED by rule vendor with an attestation", res)
		}
		if n := len(layersOf(t, oci.SignatureTag(ref))); n != 1 {
			t.Errorf("verify mode changed the .sig tag: %d layers, want the vendor's 1", n)
		}
	})
	t.Run("untrusted key", func(t *testing.T) {
		ref := e.push(t, "vendor/cache", "1")
		other, _ := c2.GenerateKeyPair(t)
		c2.Sign(t, other, ref.String(), true)
		if res := handle(t, ref, "1"); res.Outcome != "REJECTED" || !strings.Contains(res.Reason, "untrusted key") {
			t.Fatalf("Handle = %+v, want REJECTED untrusted key", res)
		}
	})
	t.Run("no signature", func(t *testing.T) {
		ref := e.push(t, "vendor/bare", "1")
		res := handle(t, ref, "1")
		if res.Outcome != "REJECTED" || !strings.Contains(res.Reason, "no signature") {
			t.Fatalf("Handle = %+v, want REJECTED no signature", res)
		}
		v, _ := e.dyn.Store.Get(ctx, ref.Context().Name(), ref.DigestStr())
		if v.Outcome != verdict.Rejected || v.Allowed() {
			t.Errorf("verdict = %+v, want REJECTED", v)
		}
	})
	t.Run("cosign v3 bundle", func(t *testing.T) {
		c3 := testenv.NewCosign(t, testenv.Cosign3Version)
		ref := e.push(t, "vendor/v3", "1")
		c3.Sign(t, vendorKey, ref.String(), false)
		if res := handle(t, ref, "1"); res.Outcome != "VERIFIED" {
			t.Fatalf("Handle = %+v, want VERIFIED from the v3 bundle", res)
		}
	})
	t.Run("ignored", func(t *testing.T) {
		ref := e.push(t, "sandbox/x", "1")
		if res := handle(t, ref, "1"); res.Outcome != pipeline.Skipped || !strings.Contains(res.Reason, "sandbox") {
			t.Fatalf("Handle = %+v, want skipped by rule sandbox", res)
		}
		if _, err := e.dyn.Store.Get(ctx, ref.Context().Name(), ref.DigestStr()); !errors.Is(err, verdict.ErrNotFound) {
			t.Errorf("an ignored repository got a verdict: %v", err)
		}
	})
	t.Run("signed index verifies its platforms", func(t *testing.T) {
		amd, _ := random.Image(128, 1)
		arm, _ := random.Image(128, 1)
		ref := testenv.PushIndex(t, e.host, "vendor/multi", "2",
			testenv.IndexEntry{Image: amd, Platform: v1.Platform{OS: "linux", Architecture: "amd64"}},
			testenv.IndexEntry{Image: arm, Platform: v1.Platform{OS: "linux", Architecture: "s390x"}})
		c2.Sign(t, vendorKey, ref.String(), true) // cosign signs the index only
		res := handle(t, ref, "2")
		if res.Outcome != "VERIFIED" || len(res.Platforms) != 2 {
			t.Fatalf("Handle(index) = %+v, want VERIFIED with 2 platforms", res)
		}
		for _, p := range res.Platforms {
			if p.Outcome != "VERIFIED" || !strings.Contains(p.Reason, "image index") {
				t.Errorf("platform %s = %+v, want VERIFIED through its index", p.Digest, p)
			}
		}
		// The s390x manifest's own untagged push, after the index: no contradiction.
		ah, _ := arm.Digest()
		armRef := ref.Context().Digest(ah.String())
		raw := event(t, "push-untagged.json", "vendor/multi", armRef.DigestStr())
		if _, err := e.h.Handle(ctx, raw); err != nil {
			t.Fatal(err)
		}
		v, _ := e.dyn.Store.Get(ctx, armRef.Context().Name(), armRef.DigestStr())
		if v.Outcome != verdict.Verified || v.IndexDigest != ref.DigestStr() {
			t.Errorf("platform verdict after its own push = %+v, want still VERIFIED via %s", v, ref.DigestStr())
		}
	})
}

func layersOf(t *testing.T, tag name.Tag) []v1.Descriptor {
	t.Helper()
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers
}

// TestTagScopedRules: a verdict belongs to the digest, so a tag-scoped verify
// rule cannot be bypassed by pushing the same digest under another tag, and
// signet withdraws its own signature from a digest it comes to reject.
func TestTagScopedRules(t *testing.T) {
	c2 := testenv.NewCosign(t, testenv.Cosign2Version)
	_, vendorPub := c2.GenerateKeyPair(t)
	pemBytes, err := os.ReadFile(vendorPub)
	if err != nil {
		t.Fatal(err)
	}
	indent := "      " + strings.ReplaceAll(strings.TrimSpace(string(pemBytes)), "\n", "\n      ")
	policy := "rules:\n  - name: releases\n    repositories: [\"team/*\"]\n    tags: [\"v*\"]\n    mode: verify\n    keys:\n    - |\n" + indent + "\ndefault:\n  mode: sign\n"
	e := newEnv(t, policy)
	ctx := context.Background()
	signetPub := filepath.Join(t.TempDir(), "signet.pub")
	if err := os.WriteFile(signetPub, e.kms.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	handle := func(sample, tag string, ref name.Digest) pipeline.Result {
		t.Helper()
		raw := testenv.Event(t, sample, "ev-"+tag, "team/app", ref.DigestStr(), tag)
		res, err := e.h.Handle(ctx, raw)
		if err != nil {
			t.Fatalf("Handle(%s) = %v", tag, err)
		}
		return res
	}

	ref := e.push(t, "team/app", "dev")
	if res := handle("push.json", "dev", ref); res.Outcome != "SIGNED" {
		t.Fatalf("push as dev = %+v, want SIGNED by the default rule", res)
	}
	otherKey, otherPub := c2.GenerateKeyPair(t)
	c2.Sign(t, otherKey, ref.String(), true) // an untrusted third party signs too

	tag, _ := name.NewTag(e.host + "/team/app:v1")
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Tag(tag, desc); err != nil {
		t.Fatal(err)
	}
	if res := handle("push.json", "v1", ref); res.Outcome != "REJECTED" || !strings.Contains(res.Reason, "untrusted key") {
		t.Fatalf("push as v1 = %+v, want REJECTED by rule releases", res)
	}
	if _, code := c2.Verify(t, signetPub, ref.String()); code == 0 {
		t.Errorf("cosign verify with signet's key still passes on a digest signet rejected")
	}
	if out, code := c2.Verify(t, otherPub, ref.String()); code != 0 {
		t.Errorf("the third party's signature was lost when signet withdrew its own:\n%s", out)
	}
	// Re-delivering the dev push, or an untagged push, cannot bring it back.
	for _, tg := range []string{"dev", ""} {
		if res := handle("push.json", tg, ref); res.Outcome != "REJECTED" {
			t.Errorf("push as %q after v1 = %+v, want REJECTED", tg, res)
		}
	}
	if _, code := c2.Verify(t, signetPub, ref.String()); code == 0 {
		t.Errorf("signet signed the rejected digest again")
	}
	v, _ := e.dyn.Store.Get(ctx, ref.Context().Name(), ref.DigestStr())
	if v.Outcome != verdict.Rejected || len(v.Tags) != 2 {
		t.Errorf("verdict = %+v, want REJECTED with tags dev and v1", v)
	}
}

func TestInvokeMalformed(t *testing.T) {
	var logs bytes.Buffer
	h := signer.NewHandler(nil, slog.New(slog.NewJSONHandler(&logs, nil)))
	for _, raw := range []string{`{not json`, ``, `null`, `{}`} {
		logs.Reset()
		out, err := h.Invoke(context.Background(), []byte(raw))
		if !errors.Is(err, ecrevent.ErrMalformed) || out != nil {
			t.Errorf("Invoke(%q) = %s, %v; want ErrMalformed, so the platform retries and dead-letters it", raw, out, err)
		}
		if !strings.Contains(logs.String(), `"msg":"event rejected"`) {
			t.Errorf("Invoke(%q) logged %q, want an 'event rejected' line", raw, logs.String())
		}
	}
}
