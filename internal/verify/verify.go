// Package verify checks, for signet's verify mode, that an image digest
// carries a cosign signature by trusted keys.
//
// It reads both formats cosign writes next to an image in its repository:
//
//   - the legacy format: a sha256-<hex>.sig tag whose manifest has one layer
//     per signature, of media type application/vnd.dev.cosign.simplesigning.v1+json,
//     holding a simple-signing payload, with the base64 signature in the
//     layer annotation dev.cosignproject.cosign/signature (cosign v2, and v3
//     with --new-bundle-format=false);
//   - sigstore bundles (application/vnd.dev.sigstore.bundle.v0.3+json),
//     attached as OCI 1.1 referrers of the digest, found through the
//     referrers API or, on registries without it, the sha256-<hex> fallback
//     tag (cosign v3). Their DSSE envelope holds an in-toto statement; only
//     statements of predicate type https://sigstore.dev/cosign/sign/v1 (what
//     `cosign sign` writes) count as signatures; attestations are skipped.
//
// A signature counts when it verifies under a trusted key AND its payload
// names this digest. The outcome is a Result, VERIFIED or REJECTED with a
// Reason; registry and KMS failures (timeouts, 5xx, 429) are returned as
// errors instead, to be retried. Like cosign, the repository named in a
// payload is not checked: a signature is about a digest.
package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/signet-dev/signet/internal/policy"
	"github.com/signet-dev/signet/internal/verdict"
)

// Media types and annotations of the cosign formats.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation    = "dev.cosignproject.cosign/signature"
	// BundleArtifactType is the artifact type of cosign v3's bundle referrers.
	BundleArtifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// emptyMediaType is the config media type of OCI artifacts.
	emptyMediaType = "application/vnd.oci.empty.v1+json"
	// bundleMediaTypePrefix matches every version of the bundle media type.
	bundleMediaTypePrefix = "application/vnd.dev.sigstore.bundle"
	// BundlePredicateTypeAnnotation is set by cosign on bundle referrers.
	BundlePredicateTypeAnnotation = "dev.sigstore.bundle.predicateType"
	// CosignSignPredicateType is the predicate type of `cosign sign` bundles.
	CosignSignPredicateType = "https://sigstore.dev/cosign/sign/v1"
)

// Limits on what is read from a registry, so that garbage cannot exhaust
// memory or time.
const (
	maxSignatures = 64
	maxBlobSize   = 1 << 20
)

// Reason says why a digest was rejected.
type Reason string

// The reasons for a rejection.
const (
	// NoSignature: there is no signature for the digest in either format
	// (or, with require all, none by some of the trusted keys).
	NoSignature Reason = "no signature"
	// BadSignature: a signature is malformed (bad base64, not an ASN.1
	// signature, unreadable payload or bundle, blob not matching its digest),
	// or its payload was altered after a trusted key signed it (the bundle's
	// key hint names a trusted key, or the signature verifies over the payload
	// cosign would have written for this digest but not over the stored one).
	BadSignature Reason = "bad signature"
	// DigestMismatch: a trusted key made the signature, but over a payload
	// that names another digest (a signature copied from another image).
	DigestMismatch Reason = "digest mismatch"
	// UntrustedKey: well-formed signatures exist, but none verifies under a
	// trusted key and no tampering could be shown.
	UntrustedKey Reason = "untrusted key"
)

// rank orders reasons from the most to the least telling, to pick the one a
// rejection reports.
func (r Reason) rank() int {
	switch r {
	case BadSignature:
		return 3
	case DigestMismatch:
		return 2
	case UntrustedKey:
		return 1
	}
	return 0
}

// Format is where a signature was found.
type Format string

// The signature formats.
const (
	// Legacy is the sha256-<hex>.sig tag.
	Legacy Format = "legacy"
	// Bundle is a sigstore bundle referrer.
	Bundle Format = "bundle"
)

// Result is the outcome of a verification.
type Result struct {
	// Outcome is verdict.Verified or verdict.Rejected.
	Outcome verdict.Outcome
	// Reason says why, when rejected.
	Reason Reason
	// Detail is one line for people: what was found and what failed.
	Detail string
	// KeyID is the id of the trusted key whose signature verified (with
	// require all, the first key of the rule).
	KeyID string
	// KeyIDs are the ids of all trusted keys with a valid signature naming
	// the digest, in the order of the keys given; with require all, a
	// rejection can list some.
	KeyIDs []string
	// SignatureDigest is the digest of the manifest holding the signature
	// that verified under KeyID: the .sig manifest or the bundle referrer.
	SignatureDigest string
	// Format is the format of that signature.
	Format Format
	// Signatures is how many signatures were examined.
	Signatures int
}

// Verified reports whether the digest passed.
func (r Result) Verified() bool { return r.Outcome == verdict.Verified }

// ErrNoKeys is returned when Verify is called without trusted keys.
var ErrNoKeys = errors.New("no trusted keys to verify with")

// Verify looks up the cosign signatures of digest (legacy .sig tag and
// bundle referrers) and checks them against keys. With requireAll every key
// must have a valid signature naming the digest; otherwise one is enough.
//
// A rejection is a Result, not an error. An error means the check could not
// be made (registry unreachable, 5xx or 429 after retries, KMS public key not
// available, ctx done) and should be retried. opts are passed to every
// registry call (auth, transport); the context is ctx.
func Verify(ctx context.Context, digest name.Digest, keys []policy.Key, requireAll bool, opts ...remote.Option) (Result, error) {
	if len(keys) == 0 {
		return Result{}, ErrNoKeys
	}
	trusted, err := loadKeys(ctx, keys)
	if err != nil {
		return Result{}, err
	}
	want, err := v1.NewHash(digest.DigestStr())
	if err != nil {
		return Result{}, fmt.Errorf("parsing digest %s: %w", digest, err)
	}
	opts = append(slices.Clone(opts), remote.WithContext(ctx))
	f := &fetcher{ctx: ctx, digest: digest, opts: opts}

	sigs, err := f.legacy()
	if err != nil {
		return Result{}, err
	}
	bundles, err := f.bundles()
	if err != nil {
		return Result{}, err
	}
	sigs = append(sigs, bundles...)
	if len(sigs) > maxSignatures {
		sigs = sigs[:maxSignatures]
	}

	findings := make([]finding, 0, len(sigs))
	for _, s := range sigs {
		findings = append(findings, s.check(trusted, want, digest))
	}
	return decide(trusted, findings, requireAll), nil
}

// isNotFound reports whether err is a registry 404.
func isNotFound(err error) bool {
	var terr *transport.Error
	return errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound
}

// fetcher reads the signature artifacts of one digest.
type fetcher struct {
	ctx    context.Context
	digest name.Digest
	opts   []remote.Option
}

// legacy reads the sha256-<hex>.sig manifest: one candidate per
// simple-signing layer, nil when the tag does not exist.
func (f *fetcher) legacy() ([]candidate, error) {
	tag := f.digest.Context().Tag(strings.Replace(f.digest.DigestStr(), ":", "-", 1) + ".sig")
	desc, err := remote.Get(tag, f.opts...)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading signature tag %s: %w", tag, err)
	}
	loc := desc.Digest.String()
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err == nil && !desc.MediaType.IsImage() {
		err = fmt.Errorf("media type %s", desc.MediaType)
	}
	if err != nil {
		return []candidate{{format: Legacy, manifest: loc, malformed: fmt.Errorf("%s is not an image manifest: %v", tag.TagStr(), err)}}, nil
	}
	var out []candidate
	for i, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType || len(out) >= maxSignatures {
			continue
		}
		c := candidate{format: Legacy, manifest: loc, where: fmt.Sprintf("%s layer %d", tag.TagStr(), i)}
		c.payload, c.malformed, err = f.blob(l)
		if err != nil {
			return nil, err
		}
		if c.malformed == nil {
			c.sig, c.malformed = decodeSignature(l.Annotations[SignatureAnnotation])
		}
		out = append(out, c)
	}
	return out, nil
}

// bundles reads the bundle referrers of the digest (referrers API, or the
// fallback tag): one candidate per cosign-sign bundle.
func (f *fetcher) bundles() ([]candidate, error) {
	idx, err := remote.Referrers(f.digest, f.opts...)
	if err != nil {
		return nil, fmt.Errorf("listing referrers of %s: %w", f.digest, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) {
			return nil, fmt.Errorf("listing referrers of %s: %w", f.digest, err)
		}
		return []candidate{{format: Bundle, malformed: fmt.Errorf("referrers of %s are not an image index: %v", f.digest.DigestStr(), err)}}, nil
	}
	var out []candidate
	for _, d := range im.Manifests {
		if len(out) >= maxSignatures {
			break
		}
		// Registries report the manifest's artifactType, or its config
		// media type when it has none (and some, like go-containerregistry's,
		// always the config media type: "application/vnd.oci.empty.v1+json"
		// for cosign's bundles). Those are read to find out.
		switch {
		case strings.HasPrefix(d.ArtifactType, bundleMediaTypePrefix):
		case d.ArtifactType == "", d.ArtifactType == emptyMediaType:
		default:
			continue
		}
		if pt, ok := d.Annotations[BundlePredicateTypeAnnotation]; ok && pt != CosignSignPredicateType {
			continue // an attestation, not a signature
		}
		c, skip, err := f.bundle(d)
		if err != nil {
			return nil, err
		}
		if !skip {
			out = append(out, c)
		}
	}
	return out, nil
}

// bundle reads one bundle referrer manifest and its bundle layer.
func (f *fetcher) bundle(d v1.Descriptor) (c candidate, skip bool, err error) {
	ref := f.digest.Context().Digest(d.Digest.String())
	c = candidate{format: Bundle, manifest: d.Digest.String(), where: "bundle " + d.Digest.String()}
	desc, err := remote.Get(ref, f.opts...)
	if isNotFound(err) {
		// Listed but gone (deleted since): nothing to check.
		return c, true, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("reading bundle manifest %s: %w", ref, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err == nil && !desc.MediaType.IsImage() {
		err = fmt.Errorf("media type %s", desc.MediaType)
	}
	if err != nil {
		c.malformed = fmt.Errorf("not an image manifest: %v", err)
		return c, false, nil
	}
	if m.Subject != nil && m.Subject.Digest.String() != f.digest.DigestStr() {
		// A stale or foreign entry in a fallback index.
		return c, true, nil
	}
	isBundle := strings.HasPrefix(m.ArtifactType, bundleMediaTypePrefix) ||
		strings.HasPrefix(string(m.Config.MediaType), bundleMediaTypePrefix)
	for _, l := range m.Layers {
		if !strings.HasPrefix(string(l.MediaType), bundleMediaTypePrefix) {
			continue
		}
		var data []byte
		data, c.malformed, err = f.blob(l)
		if err != nil {
			return c, false, err
		}
		if c.malformed != nil {
			return c, false, nil
		}
		b, err := ParseBundle(data)
		if err != nil {
			c.malformed = err
			return c, false, nil
		}
		if b.PredicateType != CosignSignPredicateType {
			return c, true, nil // an attestation, not a signature
		}
		c.payload, c.sig, c.payloadType, c.hint, c.subjects = b.Payload, b.Signature, b.PayloadType, b.Hint, b.Subjects
		c.dsse = true
		return c, false, nil
	}
	if !isBundle {
		return c, true, nil // another kind of referrer (an SBOM, say)
	}
	c.malformed = errors.New("no bundle layer")
	return c, false, nil
}

// blob reads a small blob of the repository. A blob that is too large or
// does not match its digest is malformed (second result); a registry
// failure is an error.
func (f *fetcher) blob(d v1.Descriptor) ([]byte, error, error) {
	if d.Size > maxBlobSize {
		return nil, fmt.Errorf("blob %s is %d bytes, more than %d", d.Digest, d.Size, maxBlobSize), nil
	}
	l, err := remote.Layer(f.digest.Context().Digest(d.Digest.String()), f.opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("reading blob %s: %w", d.Digest, err)
	}
	rc, err := l.Compressed()
	if isNotFound(err) {
		return nil, fmt.Errorf("blob %s is missing", d.Digest), nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading blob %s: %w", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxBlobSize+1))
	switch {
	case err != nil && strings.Contains(err.Error(), "error verifying"):
		// go-containerregistry checks size and digest at EOF.
		return nil, fmt.Errorf("blob %s does not match its digest: %v", d.Digest, err), nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading blob %s: %w", d.Digest, err)
	case len(b) > maxBlobSize:
		return nil, fmt.Errorf("blob %s is larger than %d bytes", d.Digest, maxBlobSize), nil
	}
	return b, nil, nil
}
