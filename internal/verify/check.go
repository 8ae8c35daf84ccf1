package verify

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/signet-dev/signet/internal/policy"
	"github.com/signet-dev/signet/internal/verdict"
)

// trustedKey is a policy key made ready: its verifiers and bundle key hint.
type trustedKey struct {
	id        string
	verifiers []signature.Verifier
	// hint is what sigstore bundles carry for this key:
	// base64(sha256(DER public key)).
	hint string
}

// loadKeys gets a verifier for every key; a failure (KMS unreachable) is an
// error to retry, not a verdict.
func loadKeys(ctx context.Context, keys []policy.Key) ([]trustedKey, error) {
	out := make([]trustedKey, 0, len(keys))
	for _, k := range keys {
		v, err := k.Verifier(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading trusted key %s: %w", k.ID(), err)
		}
		tk := trustedKey{id: k.ID(), verifiers: []signature.Verifier{v}}
		pub, err := v.PublicKey(options.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("reading public key of %s: %w", k.ID(), err)
		}
		if der, err := x509.MarshalPKIXPublicKey(pub); err == nil {
			sum := sha256.Sum256(der)
			tk.hint = base64.StdEncoding.EncodeToString(sum[:])
		}
		// cosign v3 signs bundles with the key's default hash (SHA-384 for
		// P-384, SHA-512 for P-521); legacy signatures always use SHA-256.
		if ec, ok := pub.(*ecdsa.PublicKey); ok && ec.Curve != elliptic.P256() {
			if dv, err := signature.LoadDefaultVerifier(pub); err == nil {
				tk.verifiers = append(tk.verifiers, dv)
			}
		}
		out = append(out, tk)
	}
	return out, nil
}

// candidate is one signature found in the registry, not yet checked.
type candidate struct {
	format   Format
	manifest string // digest of the manifest that holds it
	where    string // for details: tag and layer, or bundle digest

	payload []byte
	sig     []byte
	// malformed is set when the signature cannot be checked at all.
	malformed error

	// Bundles only.
	dsse        bool
	payloadType string
	hint        string
	subjects    []Subject
}

// finding is the result of checking one candidate.
type finding struct {
	c      candidate
	reason Reason // "" when the signature is valid
	key    string // the trusted key it verified under, or is attributed to
	detail string
}

// check verifies one candidate against the trusted keys.
func (c candidate) check(keys []trustedKey, want v1.Hash, digest name.Digest) finding {
	if c.malformed != nil {
		return finding{c: c, reason: BadSignature, detail: fmt.Sprintf("%s: %v", c.where, c.malformed)}
	}
	signed := c.payload
	if c.dsse {
		signed = PAE(c.payloadType, c.payload)
	}
	for _, k := range keys {
		if !k.verifies(c.sig, signed) {
			continue
		}
		if named, err := c.names(want); err != nil {
			return finding{c: c, reason: BadSignature, key: k.id, detail: fmt.Sprintf("%s: signed by %s, but %v", c.where, k.id, err)}
		} else if named != "" {
			return finding{c: c, reason: DigestMismatch, key: k.id, detail: fmt.Sprintf("%s: signed by %s for %s, not %s", c.where, k.id, named, want)}
		}
		return finding{c: c, key: k.id}
	}
	if !plausibleSignature(c.sig) {
		return finding{c: c, reason: BadSignature, detail: fmt.Sprintf("%s: the signature is not a well-formed ECDSA, Ed25519 or RSA signature", c.where)}
	}
	if !c.dsse {
		if _, err := ParseSimpleSigning(c.payload); err != nil {
			return finding{c: c, reason: BadSignature, detail: fmt.Sprintf("%s: %v", c.where, err)}
		}
	}
	if c.dsse {
		for _, k := range keys {
			if c.hint != "" && c.hint == k.hint {
				return finding{c: c, reason: BadSignature, key: k.id, detail: fmt.Sprintf("%s: names trusted key %s, but its signature does not verify (altered after signing)", c.where, k.id)}
			}
		}
	} else if k, ok := tamperedLegacy(keys, c.payload, c.sig, digest); ok {
		return finding{c: c, reason: BadSignature, key: k, detail: fmt.Sprintf("%s: %s signed this digest, but the stored payload was altered after signing", c.where, k)}
	}
	return finding{c: c, reason: UntrustedKey, detail: fmt.Sprintf("%s: does not verify under any trusted key", c.where)}
}

func (k trustedKey) verifies(sig, msg []byte) bool {
	for _, v := range k.verifiers {
		if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)) == nil {
			return true
		}
	}
	return false
}

// names checks that a verified payload names want. It returns the digest
// the payload names instead ("" when it names want), or an error when the
// payload names no digest at all.
func (c candidate) names(want v1.Hash) (string, error) {
	if c.dsse {
		if c.payloadType != InTotoPayloadType {
			return "", fmt.Errorf("the DSSE payload type is %q, not %q", c.payloadType, InTotoPayloadType)
		}
		if len(c.subjects) == 0 {
			return "", errors.New("the statement has no subject")
		}
		var other string
		for _, s := range c.subjects {
			if h, ok := s.Digest[want.Algorithm]; ok {
				if strings.EqualFold(h, want.Hex) {
					return "", nil
				}
				other = want.Algorithm + ":" + h
			}
		}
		if other == "" {
			return "", fmt.Errorf("the statement has no %s subject digest", want.Algorithm)
		}
		return other, nil
	}
	p, err := ParseSimpleSigning(c.payload)
	if err != nil {
		return "", err
	}
	if got := p.Critical.Image.DockerManifestDigest; got != want.String() {
		return got, nil
	}
	return "", nil
}

// tamperedLegacy reports whether a legacy signature that does not verify
// over the stored payload does verify over the payload cosign would have
// written for this digest (stored identity or this repository; stored
// annotations or none): then a trusted key signed this digest and the
// stored payload was altered. It returns that key's id.
func tamperedLegacy(keys []trustedKey, stored, sig []byte, digest name.Digest) (string, bool) {
	p, err := ParseSimpleSigning(stored)
	if err != nil {
		return "", false
	}
	refs := []string{digest.Context().Name()}
	if r := p.Critical.Identity.DockerReference; r != "" && r != refs[0] {
		refs = append(refs, r)
	}
	opts := []map[string]any{nil}
	if p.Optional != nil {
		opts = append(opts, p.Optional)
	}
	for _, r := range refs {
		for _, o := range opts {
			orig, err := json.Marshal(payload.SimpleContainerImage{
				Critical: payload.Critical{
					Identity: payload.Identity{DockerReference: r},
					Image:    payload.Image{DockerManifestDigest: digest.DigestStr()},
					Type:     payload.CosignSignatureType,
				},
				Optional: o,
			})
			if err != nil || bytes.Equal(orig, stored) {
				continue
			}
			for _, k := range keys {
				if k.verifies(sig, orig) {
					return k.id, true
				}
			}
		}
	}
	return "", false
}

// decodeSignature decodes the base64 signature annotation of a legacy layer.
func decodeSignature(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("no %s annotation", SignatureAnnotation)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("the signature is not valid base64: %v", err)
	}
	if len(b) == 0 {
		return nil, errors.New("the signature is empty")
	}
	return b, nil
}

// plausibleSignature reports whether sig has the shape of a signature cosign
// can make: an ASN.1 ECDSA signature, 64 bytes of Ed25519, or an RSA
// signature of a supported modulus size.
func plausibleSignature(sig []byte) bool {
	var es struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &es); err == nil && len(rest) == 0 && es.R != nil && es.S != nil && es.R.Sign() > 0 && es.S.Sign() > 0 {
		return true
	}
	switch len(sig) {
	case 64, 256, 384, 512:
		return true
	}
	return false
}

// decide turns the findings into a Result.
func decide(keys []trustedKey, findings []finding, requireAll bool) Result {
	res := Result{Outcome: verdict.Rejected, Signatures: len(findings)}
	valid := map[string]finding{}
	for _, f := range findings {
		if f.reason == "" {
			if _, seen := valid[f.key]; !seen {
				valid[f.key] = f
			}
		}
	}
	var missing []string
	for _, k := range keys {
		if _, ok := valid[k.id]; ok {
			res.KeyIDs = append(res.KeyIDs, k.id)
		} else {
			missing = append(missing, k.id)
		}
	}
	if len(res.KeyIDs) > 0 && (!requireAll || len(missing) == 0) {
		first := valid[res.KeyIDs[0]]
		res.Outcome, res.KeyID = verdict.Verified, first.key
		res.SignatureDigest, res.Format = first.c.manifest, first.c.format
		res.Detail = fmt.Sprintf("signed by %s (%s signature %s)", strings.Join(res.KeyIDs, ", "), first.c.format, first.c.manifest)
		return res
	}
	if len(findings) == 0 {
		res.Reason, res.Detail = NoSignature, "no cosign signature (no .sig tag, no sigstore bundle referrer)"
		return res
	}
	// Pick the most telling failure; with require all and some keys
	// satisfied, only failures attributed to a missing key count.
	var worst *finding
	for i, f := range findings {
		if f.reason == "" {
			continue
		}
		if len(res.KeyIDs) > 0 && (f.key == "" || !slices.Contains(missing, f.key)) {
			continue
		}
		if worst == nil || f.reason.rank() > worst.reason.rank() {
			worst = &findings[i]
		}
	}
	if worst == nil {
		res.Reason = NoSignature
		res.Detail = fmt.Sprintf("require all: no valid signature by %s (valid: %s)", strings.Join(missing, ", "), strings.Join(res.KeyIDs, ", "))
		return res
	}
	res.Reason, res.Detail = worst.reason, worst.detail
	if n := len(findings); n > 1 {
		res.Detail += fmt.Sprintf(" (%d signatures checked)", n)
	}
	if requireAll && len(res.KeyIDs) > 0 {
		res.Detail = fmt.Sprintf("require all: no valid signature by %s: %s", strings.Join(missing, ", "), res.Detail)
	}
	return res
}
