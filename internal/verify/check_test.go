package verify

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestCheck classifies hand-made signatures of both formats.
func TestCheck(t *testing.T) {
	key, priv := fuzzKey(t)
	other, otherPriv := fuzzKey(t)
	other.id = "other"
	want, _ := v1.NewHash(fuzzDigest)
	digest, _ := name.NewDigest("127.0.0.1:5000/vendor/app@" + fuzzDigest)
	elsewhere := "sha256:" + strings.Repeat("1", 64)

	simple := func(d, ref string, optional string) []byte {
		return []byte(fmt.Sprintf(`{"critical":{"identity":{"docker-reference":%q},"image":{"docker-manifest-digest":%q},"type":"cosign container image signature"},"optional":%s}`, ref, d, optional))
	}
	legacy := func(payload, sig []byte) candidate {
		c := candidate{format: Legacy, where: "test", payload: payload}
		c.sig, c.malformed = decodeSignature(base64.StdEncoding.EncodeToString(sig))
		return c
	}
	bundle := func(payload, sig []byte, hint string) candidate {
		b, err := ParseBundle(bundleJSON(payload, sig, hint))
		if err != nil {
			t.Fatalf("ParseBundle = %v", err)
		}
		return candidate{format: Bundle, where: "test", dsse: true, payload: b.Payload, sig: b.Signature,
			payloadType: b.PayloadType, hint: b.Hint, subjects: b.Subjects}
	}
	good := simple(fuzzDigest, "127.0.0.1:5000/vendor/app", "null")
	annotated := simple(fuzzDigest, "127.0.0.1:5000/vendor/app", `{"approved":"yes"}`)
	st := statementFor(fuzzDigest)
	stOther := statementFor(elsewhere)

	tests := []struct {
		name string
		c    candidate
		want Reason
	}{
		{"legacy valid", legacy(good, sign(t, priv, good)), ""},
		{"legacy valid with annotations", legacy(annotated, sign(t, priv, annotated)), ""},
		{"legacy other digest", legacy(simple(elsewhere, "x", "null"), sign(t, priv, simple(elsewhere, "x", "null"))), DigestMismatch},
		{"legacy other key", legacy(good, sign(t, otherPriv, good)), UntrustedKey},
		{"legacy annotations added after signing", legacy(annotated, sign(t, priv, good)), BadSignature},
		{"legacy annotations removed after signing", legacy(good, sign(t, priv, annotated)), UntrustedKey}, // cannot be shown
		{"legacy identity changed after signing", legacy(simple(fuzzDigest, "evil/app", "null"), sign(t, priv, good)), BadSignature},
		{"legacy signature of garbage", legacy(good, []byte("not a signature")), BadSignature},
		{"legacy payload not JSON", legacy([]byte("x"), sign(t, priv, []byte("x"))), BadSignature},
		{"legacy payload without digest", legacy([]byte(`{"critical":{}}`), sign(t, priv, []byte(`{"critical":{}}`))), BadSignature},
		{"bundle valid", bundle(st, sign(t, priv, PAE(InTotoPayloadType, st)), key.hint), ""},
		{"bundle valid without hint", bundle(st, sign(t, priv, PAE(InTotoPayloadType, st)), ""), ""},
		{"bundle other digest", bundle(stOther, sign(t, priv, PAE(InTotoPayloadType, stOther)), key.hint), DigestMismatch},
		{"bundle other key", bundle(st, sign(t, otherPriv, PAE(InTotoPayloadType, st)), other.hint), UntrustedKey},
		{"bundle altered, hint of trusted key", bundle(st, sign(t, priv, PAE(InTotoPayloadType, stOther)), key.hint), BadSignature},
		{"bundle altered, no hint", bundle(st, sign(t, priv, PAE(InTotoPayloadType, stOther)), ""), UntrustedKey},
		{"bundle signed over the raw payload", bundle(st, sign(t, priv, st), key.hint), BadSignature},
		{"malformed", candidate{where: "test", malformed: fmt.Errorf("broken")}, BadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.c.check([]trustedKey{key}, want, digest)
			if got.reason != tc.want {
				t.Errorf("check(%s) = %q (%s), want %q", tc.name, got.reason, got.detail, tc.want)
			}
			if got.reason == "" && got.key != key.id {
				t.Errorf("check(%s) key = %q, want %q", tc.name, got.key, key.id)
			}
		})
	}
}

// TestDecide picks the verdict from findings.
func TestDecide(t *testing.T) {
	a := trustedKey{id: "a"}
	b := trustedKey{id: "b"}
	valid := func(k string) finding { return finding{key: k, c: candidate{format: Legacy, manifest: "sha256:" + k}} }
	bad := func(r Reason, k string) finding { return finding{reason: r, key: k, detail: string(r)} }
	tests := []struct {
		name       string
		findings   []finding
		requireAll bool
		want       Reason
		wantKey    string
	}{
		{"nothing", nil, false, NoSignature, ""},
		{"one valid among failures", []finding{bad(BadSignature, ""), valid("b")}, false, "", "b"},
		{"first key wins", []finding{valid("b"), valid("a")}, false, "", "a"},
		{"bad beats mismatch beats untrusted", []finding{bad(UntrustedKey, ""), bad(BadSignature, ""), bad(DigestMismatch, "a")}, false, BadSignature, ""},
		{"mismatch beats untrusted", []finding{bad(UntrustedKey, ""), bad(DigestMismatch, "a")}, false, DigestMismatch, ""},
		{"require all, both", []finding{valid("a"), valid("b")}, true, "", "a"},
		{"require all, one", []finding{valid("a"), bad(UntrustedKey, "")}, true, NoSignature, ""},
		{"require all, one and a mismatch by the other", []finding{valid("a"), bad(DigestMismatch, "b")}, true, DigestMismatch, ""},
		{"require all, one and a mismatch by the same", []finding{valid("a"), bad(DigestMismatch, "a")}, true, NoSignature, ""},
		{"require all, none", []finding{bad(UntrustedKey, "")}, true, UntrustedKey, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decide([]trustedKey{a, b}, tc.findings, tc.requireAll)
			if got.Reason != tc.want || got.KeyID != tc.wantKey || got.Verified() != (tc.want == "") {
				t.Errorf("decide(%s) = %s %q key %q (%s), want reason %q key %q", tc.name, got.Outcome, got.Reason, got.KeyID, got.Detail, tc.want, tc.wantKey)
			}
		})
	}
}
