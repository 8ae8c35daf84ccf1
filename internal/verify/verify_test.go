package verify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/internal/policy"
	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
	"github.com/signet-dev/signet/internal/verify"
)

// pushRandom pushes a random image to reg/repo and returns its digest.
func pushRandom(t *testing.T, reg, repo string) name.Digest {
	t.Helper()
	return testenv.PushRandom(t, reg, repo, "latest", 256, 1)
}

// plainRegistry starts a registry without the referrers API (like the
// Debian docker-registry 2.8), so cosign v3 and signet use the fallback tag.
func plainRegistry(t *testing.T) string {
	t.Helper()
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

// keyOf reads a cosign.pub file as a trusted policy key.
func keyOf(t *testing.T, pubPath string) policy.Key {
	t.Helper()
	b, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := policy.ParseKey(string(b))
	if err != nil {
		t.Fatalf("ParseKey(%s) = %v", pubPath, err)
	}
	return k
}

func sigTag(d name.Digest) name.Tag {
	return d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1) + ".sig")
}

func run(t *testing.T, d name.Digest, keys []policy.Key, requireAll bool, opts ...remote.Option) verify.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := verify.Verify(ctx, d, keys, requireAll, opts...)
	if err != nil {
		t.Fatalf("Verify(%s) = %v, want a result", d, err)
	}
	return res
}

func wantVerified(t *testing.T, res verify.Result, keyID string, format verify.Format) {
	t.Helper()
	if !res.Verified() || res.Outcome != verdict.Verified || res.Reason != "" {
		t.Fatalf("Verify = %s %q (%s), want VERIFIED", res.Outcome, res.Reason, res.Detail)
	}
	if res.KeyID != keyID {
		t.Errorf("Verify KeyID = %q, want %q", res.KeyID, keyID)
	}
	if res.Format != format {
		t.Errorf("Verify Format = %q, want %q", res.Format, format)
	}
	if _, err := v1.NewHash(res.SignatureDigest); err != nil {
		t.Errorf("Verify SignatureDigest = %q, want a digest", res.SignatureDigest)
	}
}

func wantRejected(t *testing.T, res verify.Result, reason verify.Reason) {
	t.Helper()
	if res.Verified() || res.Outcome != verdict.Rejected || res.Reason != reason {
		t.Fatalf("Verify = %s %q (%s), want REJECTED %q", res.Outcome, res.Reason, res.Detail, reason)
	}
	if res.Detail == "" {
		t.Errorf("Verify REJECTED %q with no detail", res.Reason)
	}
}

// TestLegacyCosign2 checks the legacy .sig format as cosign v2 writes it.
func TestLegacyCosign2(t *testing.T) {
	c := testenv.NewCosign(t, testenv.Cosign2Version)
	reg := testenv.Registry(t)
	key, pub := c.GenerateKeyPair(t)
	_, otherPub := c.GenerateKeyPair(t)
	trusted, other := keyOf(t, pub), keyOf(t, otherPub)

	d := pushRandom(t, reg, "vendor/app")
	wantRejected(t, run(t, d, []policy.Key{trusted}, false), verify.NoSignature)

	c.Sign(t, key, d.String(), true)
	res := run(t, d, []policy.Key{trusted}, false)
	wantVerified(t, res, trusted.ID(), verify.Legacy)
	desc, err := remote.Head(sigTag(d))
	if err != nil {
		t.Fatalf("reading %s: %v", sigTag(d), err)
	}
	if res.SignatureDigest != desc.Digest.String() {
		t.Errorf("Verify SignatureDigest = %s, want the .sig manifest %s", res.SignatureDigest, desc.Digest)
	}
	// The trusted key may come second; any one is enough.
	wantVerified(t, run(t, d, []policy.Key{other, trusted}, false), trusted.ID(), verify.Legacy)

	wantRejected(t, run(t, d, []policy.Key{other}, false), verify.UntrustedKey)
}

// rewriteSig replaces the .sig manifest of d by one whose layers are made by
// edit from the current layers' payloads and annotations.
func rewriteSig(t *testing.T, d name.Digest, edit func(payload []byte, ann map[string]string) ([]byte, map[string]string)) {
	t.Helper()
	img, err := remote.Image(sigTag(d))
	if err != nil {
		t.Fatalf("reading %s: %v", sigTag(d), err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	out = mutate.ConfigMediaType(out, types.OCIConfigJSON)
	for _, l := range m.Layers {
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := layer.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		p, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		np, ann := edit(p, l.Annotations)
		out, err = mutate.Append(out, mutate.Addendum{
			Layer:       static.NewLayer(np, l.MediaType),
			Annotations: ann,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := remote.Write(sigTag(d), out); err != nil {
		t.Fatalf("writing %s: %v", sigTag(d), err)
	}
}

// TestTamperedLegacy rewrites a cosign v2 .sig manifest.
func TestTamperedLegacy(t *testing.T) {
	c := testenv.NewCosign(t, testenv.Cosign2Version)
	reg := testenv.Registry(t)
	key, pub := c.GenerateKeyPair(t)
	trusted := keyOf(t, pub)

	tests := []struct {
		name string
		edit func(p []byte, ann map[string]string) ([]byte, map[string]string)
	}{
		{"payload annotations added", func(p []byte, ann map[string]string) ([]byte, map[string]string) {
			var m map[string]any
			if err := json.Unmarshal(p, &m); err != nil {
				t.Fatal(err)
			}
			m["optional"] = map[string]any{"approved-by": "security-team"}
			np, _ := json.Marshal(m)
			return np, ann
		}},
		{"payload identity changed", func(p []byte, ann map[string]string) ([]byte, map[string]string) {
			return []byte(strings.Replace(string(p), "vendor/app", "vendor/other", 1)), ann
		}},
		{"payload not JSON", func(p []byte, ann map[string]string) ([]byte, map[string]string) {
			return append([]byte("garbage"), p...), ann
		}},
		{"signature not base64", func(p []byte, ann map[string]string) ([]byte, map[string]string) {
			return p, map[string]string{verify.SignatureAnnotation: "%%%not-base64%%%"}
		}},
		{"signature not ASN.1", func(p []byte, ann map[string]string) ([]byte, map[string]string) {
			return p, map[string]string{verify.SignatureAnnotation: "c2lnbmF0dXJl"} // "signature"
		}},
		{"signature missing", func(p []byte, ann map[string]string) ([]byte, map[string]string) {
			return p, nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := pushRandom(t, reg, "vendor/app")
			c.Sign(t, key, d.String(), true)
			wantVerified(t, run(t, d, []policy.Key{trusted}, false), trusted.ID(), verify.Legacy)
			rewriteSig(t, d, tc.edit)
			if out, code := c.Verify(t, pub, d.String()); code == 0 {
				t.Fatalf("cosign verify of the tampered signature = exit 0; output:\n%s", out)
			}
			wantRejected(t, run(t, d, []policy.Key{trusted}, false), verify.BadSignature)
		})
	}
}

// TestCopiedSignature copies the .sig manifest of one digest to another.
func TestCopiedSignature(t *testing.T) {
	c := testenv.NewCosign(t, testenv.Cosign2Version)
	reg := testenv.Registry(t)
	key, pub := c.GenerateKeyPair(t)
	trusted := keyOf(t, pub)

	signed := pushRandom(t, reg, "vendor/app")
	c.Sign(t, key, signed.String(), true)
	target := pushRandom(t, reg, "vendor/app")
	sig, err := remote.Image(sigTag(signed))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigTag(target), sig); err != nil {
		t.Fatal(err)
	}
	res := run(t, target, []policy.Key{trusted}, false)
	wantRejected(t, res, verify.DigestMismatch)
	if !strings.Contains(res.Detail, signed.DigestStr()) {
		t.Errorf("Verify Detail = %q, want it to name the signed digest %s", res.Detail, signed.DigestStr())
	}
}

// TestRequireAll signs with one or two of two trusted keys.
func TestRequireAll(t *testing.T) {
	c := testenv.NewCosign(t, testenv.Cosign2Version)
	reg := testenv.Registry(t)
	key1, pub1 := c.GenerateKeyPair(t)
	key2, pub2 := c.GenerateKeyPair(t)
	k1, k2 := keyOf(t, pub1), keyOf(t, pub2)
	keys := []policy.Key{k1, k2}

	d := pushRandom(t, reg, "vendor/app")
	c.Sign(t, key1, d.String(), true)
	wantVerified(t, run(t, d, keys, false), k1.ID(), verify.Legacy)
	res := run(t, d, keys, true)
	wantRejected(t, res, verify.NoSignature)
	if !strings.Contains(res.Detail, k2.ID()) || !slices.Equal(res.KeyIDs, []string{k1.ID()}) {
		t.Errorf("Verify(require all) = %q, KeyIDs %v; want the missing key %s named and KeyIDs [%s]", res.Detail, res.KeyIDs, k2.ID(), k1.ID())
	}

	c.Sign(t, key2, d.String(), true)
	res = run(t, d, keys, true)
	wantVerified(t, res, k1.ID(), verify.Legacy)
	if !slices.Equal(res.KeyIDs, []string{k1.ID(), k2.ID()}) {
		t.Errorf("Verify(require all) KeyIDs = %v, want both keys", res.KeyIDs)
	}
}

// TestKMSKeys signs with a local-kms key through cosign and trusts the
// awskms:// reference.
func TestKMSKeys(t *testing.T) {
	testenv.AWSEnv(t)
	k := testenv.StartKMS(t)
	for _, tc := range []struct {
		version string
		legacy  bool
		format  verify.Format
	}{
		{testenv.Cosign2Version, true, verify.Legacy},
		{testenv.Cosign3Version, false, verify.Bundle},
	} {
		t.Run(tc.version, func(t *testing.T) {
			c := testenv.NewCosign(t, tc.version)
			reg := testenv.Registry(t)
			d := pushRandom(t, reg, "vendor/app")
			c.Sign(t, k.KeyRef, d.String(), tc.legacy)
			trusted, err := policy.ParseKey(k.KeyRef)
			if err != nil {
				t.Fatal(err)
			}
			wantVerified(t, run(t, d, []policy.Key{trusted}, false), k.KeyRef, tc.format)
			_, otherPub := c.GenerateKeyPair(t)
			wantRejected(t, run(t, d, []policy.Key{keyOf(t, otherPub)}, false), verify.UntrustedKey)
		})
	}
}

// failing wraps a registry and answers requests whose path contains match
// with status, counting them.
type failing struct {
	next   http.Handler
	match  string
	status int
	hits   atomic.Int32
}

func (f *failing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, f.match) {
		f.hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"test failure %d"}]}`, f.status)
		return
	}
	f.next.ServeHTTP(w, r)
}

// TestRegistryErrors checks that registry failures are errors, not verdicts.
func TestRegistryErrors(t *testing.T) {
	tests := []struct {
		name   string
		match  string
		status int
	}{
		{"sig tag 503", ".sig", http.StatusServiceUnavailable},
		{"sig tag 429", ".sig", http.StatusTooManyRequests},
		{"sig tag 500", ".sig", http.StatusInternalServerError},
		{"referrers 502", "/referrers/", http.StatusBadGateway},
		{"sig tag 401", ".sig", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &failing{next: registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(true)), match: tc.match, status: tc.status}
			s := httptest.NewServer(f)
			defer s.Close()
			reg := strings.TrimPrefix(s.URL, "http://")
			d := pushRandom(t, reg, "vendor/app")
			k, _ := policy.ParseKey(testKeyPEM(t))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := verify.Verify(ctx, d, []policy.Key{k}, false, remote.WithRetryBackoff(remote.Backoff{Steps: 1}))
			if err == nil {
				t.Fatalf("Verify with %s answering %d = %s %q, nil; want an error", tc.match, tc.status, res.Outcome, res.Reason)
			}
			if f.hits.Load() == 0 {
				t.Errorf("the failing endpoint %s was never called", tc.match)
			}
		})
	}

	t.Run("context cancelled", func(t *testing.T) {
		reg := testenv.Registry(t)
		d := pushRandom(t, reg, "vendor/app")
		k, _ := policy.ParseKey(testKeyPEM(t))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if res, err := verify.Verify(ctx, d, []policy.Key{k}, false); err == nil {
			t.Fatalf("Verify with a cancelled context = %s %q, nil; want an error", res.Outcome, res.Reason)
		}
	})
	t.Run("no keys", func(t *testing.T) {
		d := pushRandom(t, testenv.Registry(t), "vendor/app")
		if _, err := verify.Verify(context.Background(), d, nil, false); err != verify.ErrNoKeys {
			t.Fatalf("Verify without keys = %v, want ErrNoKeys", err)
		}
	})
}

// TestGarbage puts things in the signature places that are not signatures.
func TestGarbage(t *testing.T) {
	reg := testenv.Registry(t)
	k, _ := policy.ParseKey(testKeyPEM(t))
	keys := []policy.Key{k}

	t.Run("sig tag is an index", func(t *testing.T) {
		d := pushRandom(t, reg, "vendor/app")
		idx, err := random.Index(64, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(sigTag(d), idx); err != nil {
			t.Fatal(err)
		}
		wantRejected(t, run(t, d, keys, false), verify.BadSignature)
	})
	t.Run("sig tag without signature layers", func(t *testing.T) {
		d := pushRandom(t, reg, "vendor/app")
		img, _ := random.Image(64, 2)
		if err := remote.Write(sigTag(d), img); err != nil {
			t.Fatal(err)
		}
		wantRejected(t, run(t, d, keys, false), verify.NoSignature)
	})
	t.Run("bundle referrer with garbage bundle", func(t *testing.T) {
		d := pushRandom(t, reg, "vendor/app")
		pushReferrer(t, d, []byte("{not json"), nil)
		wantRejected(t, run(t, d, keys, false), verify.BadSignature)
	})
	t.Run("bundle referrer that is an attestation", func(t *testing.T) {
		d := pushRandom(t, reg, "vendor/app")
		pushReferrer(t, d, []byte("{}"), map[string]string{verify.BundlePredicateTypeAnnotation: "https://slsa.dev/provenance/v1"})
		wantRejected(t, run(t, d, keys, false), verify.NoSignature)
	})
}

// rawManifest is a manifest to remote.Put as is.
type rawManifest []byte

func (m rawManifest) RawManifest() ([]byte, error)        { return m, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// pushReferrer pushes a referrer of d shaped like cosign v3's: an empty
// config, the bundle as its one layer, a top-level artifactType. It returns
// the referrer's digest.
func pushReferrer(t *testing.T, d name.Digest, bundle []byte, ann map[string]string) v1.Hash {
	t.Helper()
	subj, err := remote.Head(d)
	if err != nil {
		t.Fatal(err)
	}
	cfg := static.NewLayer([]byte("{}"), "application/vnd.oci.empty.v1+json")
	layer := static.NewLayer(bundle, verify.BundleArtifactType)
	var descs []v1.Descriptor
	for _, l := range []v1.Layer{cfg, layer} {
		if err := remote.WriteLayer(d.Context(), l); err != nil {
			t.Fatal(err)
		}
		h, _ := l.Digest()
		sz, _ := l.Size()
		mt, _ := l.MediaType()
		descs = append(descs, v1.Descriptor{MediaType: mt, Digest: h, Size: sz})
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  verify.BundleArtifactType,
		Config:        descs[0],
		Layers:        descs[1:],
		Subject:       &v1.Descriptor{MediaType: subj.MediaType, Digest: subj.Digest, Size: subj.Size},
		Annotations:   ann,
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := v1.SHA256(strings.NewReader(string(b)))
	if err := remote.Put(d.Context().Digest(h.String()), rawManifest(b)); err != nil {
		t.Fatalf("pushing referrer: %v", err)
	}
	return h
}

// testKeyPEM returns a fresh P-256 public key as PEM.
func testKeyPEM(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// bundleReferrer returns the one bundle referrer cosign v3 attached to d.
func bundleReferrer(t *testing.T, d name.Digest) v1.Descriptor {
	t.Helper()
	idx, err := remote.Referrers(d)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s has %d referrers, want 1", d, len(im.Manifests))
	}
	return im.Manifests[0]
}

// TestBundleCosign3 checks the sigstore bundles cosign v3 writes, through the
// referrers API and through the fallback tag, and its legacy format.
func TestBundleCosign3(t *testing.T) {
	c := testenv.NewCosign(t, testenv.Cosign3Version)
	key, pub := c.GenerateKeyPair(t)
	_, otherPub := c.GenerateKeyPair(t)
	trusted, other := keyOf(t, pub), keyOf(t, otherPub)

	tests := []struct {
		name     string
		registry func(*testing.T) string
		legacy   bool
		format   verify.Format
		fallback bool // the referrers fallback tag must exist
	}{
		{"bundle, referrers API", func(t *testing.T) string { return testenv.Registry(t) }, false, verify.Bundle, false},
		{"bundle, fallback tag", plainRegistry, false, verify.Bundle, true},
		{"legacy", func(t *testing.T) string { return testenv.Registry(t) }, true, verify.Legacy, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := pushRandom(t, tc.registry(t), "vendor/app")
			c.Sign(t, key, d.String(), tc.legacy)
			fallback := d.Context().Tag(strings.Replace(d.DigestStr(), ":", "-", 1))
			if _, err := remote.Head(fallback); (err == nil) != tc.fallback {
				t.Errorf("after cosign sign, tag %s exists = %v, want %v", fallback.TagStr(), err == nil, tc.fallback)
			}
			res := run(t, d, []policy.Key{trusted}, false)
			wantVerified(t, res, trusted.ID(), tc.format)
			if tc.format == verify.Bundle {
				if ref := bundleReferrer(t, d); res.SignatureDigest != ref.Digest.String() {
					t.Errorf("Verify SignatureDigest = %s, want the bundle referrer %s", res.SignatureDigest, ref.Digest)
				}
			}
			wantRejected(t, run(t, d, []policy.Key{other}, false), verify.UntrustedKey)
		})
	}
}

// TestTamperedBundle alters the statement inside a cosign v3 bundle.
func TestTamperedBundle(t *testing.T) {
	c := testenv.NewCosign(t, testenv.Cosign3Version)
	key, pub := c.GenerateKeyPair(t)
	trusted := keyOf(t, pub)
	reg := testenv.Registry(t)
	d := pushRandom(t, reg, "vendor/app")
	c.Sign(t, key, d.String(), false)
	wantVerified(t, run(t, d, []policy.Key{trusted}, false), trusted.ID(), verify.Bundle)

	ref := bundleReferrer(t, d)
	img, err := remote.Image(d.Context().Digest(ref.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("bundle referrer has %d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	var bundle map[string]any
	if err := json.Unmarshal(raw, &bundle); err != nil {
		t.Fatalf("cosign's bundle is not JSON: %v", err)
	}
	env := bundle["dsseEnvelope"].(map[string]any)
	st, err := base64.StdEncoding.DecodeString(env["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var statement map[string]any
	if err := json.Unmarshal(st, &statement); err != nil {
		t.Fatal(err)
	}
	statement["predicate"] = map[string]any{"approved-by": "security-team"}
	st, _ = json.Marshal(statement)
	env["payload"] = base64.StdEncoding.EncodeToString(st)
	tampered, _ := json.Marshal(bundle)

	m, _ := img.Manifest()
	pushReferrer(t, d, tampered, m.Annotations)
	if err := remote.Delete(d.Context().Digest(ref.Digest.String())); err != nil {
		t.Fatalf("deleting the original bundle: %v", err)
	}
	if out, code := c.Verify(t, pub, d.String()); code == 0 {
		t.Fatalf("cosign verify of the tampered bundle = exit 0; output:\n%s", out)
	}
	wantRejected(t, run(t, d, []policy.Key{trusted}, false), verify.BadSignature)
}

// TestAttestationIsNotASignature attaches only a cosign v3 attestation.
func TestAttestationIsNotASignature(t *testing.T) {
	c := testenv.NewCosign(t, testenv.Cosign3Version)
	key, pub := c.GenerateKeyPair(t)
	trusted := keyOf(t, pub)
	d := pushRandom(t, testenv.Registry(t), "vendor/app")
	pred := t.TempDir() + "/predicate.json"
	if err := os.WriteFile(pred, []byte(`{"builder":"test"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Attest(t, key, d.String(), "https://slsa.dev/provenance/v1", pred, false)
	wantRejected(t, run(t, d, []policy.Key{trusted}, false), verify.NoSignature)
	c.Sign(t, key, d.String(), false)
	wantVerified(t, run(t, d, []policy.Key{trusted}, false), trusted.ID(), verify.Bundle)
}
