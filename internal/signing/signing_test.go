package signing_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/signet-dev/signet/internal/signing"
)

func newSigner(t *testing.T) *signing.Signer {
	t.Helper()
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sv, _ := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	s, err := signing.New(context.Background(), sv, "test-key")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestSignImage(t *testing.T) {
	ctx := context.Background()
	s, other := newSigner(t), newSigner(t)
	ref, _ := name.NewDigest("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api@" + d1)
	pl, sig, err := s.SignImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Critical struct {
			Identity struct {
				DockerReference string `json:"docker-reference"`
			} `json:"identity"`
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if err := json.Unmarshal(pl, &p); err != nil || p.Critical.Identity.DockerReference != ref.Context().Name() ||
		p.Critical.Image.Digest != d1 || p.Critical.Type != "cosign container image signature" {
		t.Fatalf("payload %s does not bind %s", pl, ref)
	}
	if !s.SignedImage(ctx, ref, pl, sig) {
		t.Errorf("SignedImage(own signature) = false")
	}
	if other.SignedImage(ctx, ref, pl, sig) {
		t.Errorf("SignedImage with another key = true")
	}
	ref2, _ := name.NewDigest("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api@" + d2)
	if s.SignedImage(ctx, ref2, pl, sig) {
		t.Errorf("SignedImage for another digest = true")
	}
	if s.SignedImage(ctx, ref, []byte(strings.Replace(string(pl), "team/api", "team/apx", 1)), sig) {
		t.Errorf("SignedImage of a tampered payload = true")
	}
	if s.SignedImage(ctx, ref, pl, "not base64!") {
		t.Errorf("SignedImage of a garbled signature = true")
	}
}

func TestAttest(t *testing.T) {
	ctx := context.Background()
	s := newSigner(t)
	ref, _ := name.NewDigest("127.0.0.1:5000/team/api@" + d1)
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st, err := signing.Statement(ref, signing.Summary{VerifierID: "https://github.com/signet-dev/signet@test", Time: now, PolicyURI: "signet:policy/default#sign", Result: "PASSED"})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(st, &got); err != nil {
		t.Fatal(err)
	}
	pred := got["predicate"].(map[string]any)
	if got["_type"] != "https://in-toto.io/Statement/v1" || got["predicateType"] != signing.VSAPredicateType ||
		pred["resourceUri"] != "127.0.0.1:5000/team/api@"+d1 || pred["verificationResult"] != "PASSED" ||
		pred["timeVerified"] != "2026-12-01T10:00:00Z" || pred["verifier"].(map[string]any)["id"] != "https://github.com/signet-dev/signet@test" {
		t.Fatalf("statement = %s", st)
	}
	env, err := s.Attest(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if !s.AttestedImage(ctx, ref, env, signing.VSAPredicateType) {
		t.Errorf("AttestedImage(own envelope) = false")
	}
	ref2, _ := name.NewDigest("127.0.0.1:5000/team/api@" + d2)
	if s.AttestedImage(ctx, ref2, env, signing.VSAPredicateType) {
		t.Errorf("AttestedImage for another digest = true")
	}
	if s.AttestedImage(ctx, ref, env, "https://slsa.dev/provenance/v1") {
		t.Errorf("AttestedImage for another predicate type = true")
	}
	if newSigner(t).AttestedImage(ctx, ref, env, signing.VSAPredicateType) {
		t.Errorf("AttestedImage with another key = true")
	}
}
