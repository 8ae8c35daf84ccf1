package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature"
)

// fuzzKey is a trusted key for the fuzz tests, with the means to sign seeds.
func fuzzKey(f testing.TB) (trustedKey, *ecdsa.PrivateKey) {
	f.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	v, err := signature.LoadVerifier(&priv.PublicKey, crypto.SHA256)
	if err != nil {
		f.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	sum := sha256.Sum256(der)
	return trustedKey{id: "fuzz", verifiers: []signature.Verifier{v}, hint: base64.StdEncoding.EncodeToString(sum[:])}, priv
}

func sign(f testing.TB, priv *ecdsa.PrivateKey, msg []byte) []byte {
	f.Helper()
	sum := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		f.Fatal(err)
	}
	return sig
}

const fuzzDigest = "sha256:4b0a0c6a5f5b3ad9d1c1c4b3c10b4d8d0b6d7e3a1a2f3e4d5c6b7a8f9e0d1c2b"

// bundleJSON builds a cosign-v3-shaped bundle around a DSSE envelope.
func bundleJSON(payload, sig []byte, hint string) []byte {
	b, _ := json.Marshal(map[string]any{
		"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
		"verificationMaterial": map[string]any{
			"publicKey": map[string]any{"hint": hint},
		},
		"dsseEnvelope": map[string]any{
			"payload":     payload,
			"payloadType": InTotoPayloadType,
			"signatures":  []map[string]any{{"sig": sig, "keyid": ""}},
		},
	})
	return b
}

func statementFor(digest string) []byte {
	algo, hex, _ := strings.Cut(digest, ":")
	b, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []map[string]any{{"name": "127.0.0.1/vendor/app", "digest": map[string]string{algo: hex}}},
		"predicateType": CosignSignPredicateType,
		"predicate":     map[string]any{},
	})
	return b
}

// FuzzBundle checks that ParseBundle and the check of a bundle signature
// never panic on any input, and that a bundle only verifies when its
// signature is by the trusted key and its statement names the digest.
func FuzzBundle(f *testing.F) {
	key, priv := fuzzKey(f)
	st := statementFor(fuzzDigest)
	good := sign(f, priv, PAE(InTotoPayloadType, st))
	f.Add(bundleJSON(st, good, key.hint))
	f.Add(bundleJSON(statementFor("sha256:"+strings.Repeat("0", 64)), sign(f, priv, PAE(InTotoPayloadType, statementFor("sha256:"+strings.Repeat("0", 64)))), key.hint))
	f.Add(bundleJSON([]byte(`{"subject":[]}`), good, ""))
	f.Add([]byte(`{"dsseEnvelope":{"payload":"!!","signatures":[{"sig":"AA=="}]}}`))
	f.Add([]byte(`{"messageSignature":{"signature":"AA=="}}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})

	want, _ := v1.NewHash(fuzzDigest)
	digest, _ := name.NewDigest("127.0.0.1:5000/vendor/app@" + fuzzDigest)
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		c := candidate{format: Bundle, where: "fuzz", dsse: true, payload: b.Payload, sig: b.Signature,
			payloadType: b.PayloadType, hint: b.Hint, subjects: b.Subjects}
		got := c.check([]trustedKey{key}, want, digest)
		if got.reason == "" {
			named := false
			for _, s := range b.Subjects {
				named = named || strings.EqualFold(s.Digest["sha256"], want.Hex)
			}
			if !named || !key.verifies(b.Signature, PAE(b.PayloadType, b.Payload)) {
				t.Fatalf("check(%q) = valid, but the signature does not verify or the statement does not name %s", data, want)
			}
		}
	})
}

// FuzzLegacy checks that a legacy signature (payload, base64 annotation)
// never panics the check, and verifies only when the trusted key signed a
// payload that names the digest.
func FuzzLegacy(f *testing.F) {
	key, priv := fuzzKey(f)
	payload := []byte(fmt.Sprintf(`{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/vendor/app"},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":null}`, fuzzDigest))
	f.Add(payload, base64.StdEncoding.EncodeToString(sign(f, priv, payload)))
	other := []byte(strings.Replace(string(payload), "4b0a", "0000", 1))
	f.Add(other, base64.StdEncoding.EncodeToString(sign(f, priv, other)))
	f.Add(payload, "not base64")
	f.Add([]byte(`{"critical":{}}`), "MEUCIQ==")
	f.Add([]byte(`[]`), "")

	want, _ := v1.NewHash(fuzzDigest)
	digest, _ := name.NewDigest("127.0.0.1:5000/vendor/app@" + fuzzDigest)
	f.Fuzz(func(t *testing.T, payload []byte, annotation string) {
		c := candidate{format: Legacy, where: "fuzz", payload: payload}
		c.sig, c.malformed = decodeSignature(annotation)
		got := c.check([]trustedKey{key}, want, digest)
		if got.reason.rank() == 0 && got.reason != "" {
			t.Fatalf("check(%q, %q) = unknown reason %q", payload, annotation, got.reason)
		}
		if got.reason == "" {
			p, err := ParseSimpleSigning(payload)
			if err != nil || p.Critical.Image.DockerManifestDigest != fuzzDigest || !key.verifies(c.sig, payload) {
				t.Fatalf("check(%q, %q) = valid, but the payload does not name %s or does not verify", payload, annotation, fuzzDigest)
			}
		}
	})
}
