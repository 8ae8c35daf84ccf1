// Package pipeline is signet's push-time work for one event: resolve the
// pushed digest, leave signature artifacts alone, apply the repository's
// policy (sign, verify or ignore), write cosign's signature and attestation
// tags, and record the verdict. Each stage is reached through a small
// interface, so the same pipeline runs against ECR, KMS and DynamoDB in AWS
// and against their local counterparts in tests.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/signet-dev/signet/internal/ecrauth"
	"github.com/signet-dev/signet/internal/ecrevent"
	"github.com/signet-dev/signet/internal/oci"
	"github.com/signet-dev/signet/internal/signing"
	"github.com/signet-dev/signet/internal/verdict"
)

// Registry is the registry I/O the pipeline needs.
type Registry interface {
	Get(ctx context.Context, ref name.Digest) (*remote.Descriptor, error)
	Append(ctx context.Context, tag name.Tag, mediaType types.MediaType, has func(oci.Layer) bool, makeLayer func() (mutate.Addendum, error)) (oci.AppendResult, error)
	Remove(ctx context.Context, tag name.Tag, mediaType types.MediaType, mine func(oci.Layer) bool) (int, error)
}

// Signer signs images and attestations with one key.
type Signer interface {
	KeyID() string
	SignImage(ctx context.Context, ref name.Digest) ([]byte, string, error)
	SignedImage(ctx context.Context, ref name.Digest, payload []byte, sigB64 string) bool
	Attest(ctx context.Context, statement []byte) ([]byte, error)
	AttestedImage(ctx context.Context, ref name.Digest, envelope []byte, predicateType string) bool
}

// Store keeps verdicts and serialises signet's workers on one digest.
type Store interface {
	verdict.Store
	Lock(ctx context.Context, repository, digest string, ttl time.Duration) (func(context.Context) error, error)
}

// Mode is what a policy rule asks for.
type Mode string

// The modes.
const (
	ModeSign   Mode = "sign"
	ModeVerify Mode = "verify"
	ModeIgnore Mode = "ignore"
)

// Check is the result of verifying a digest's signatures.
type Check struct {
	OK              bool
	KeyID           string // the trusted key that verified
	Reason          string // why not, when !OK
	SignatureDigest string // the manifest that held the signature
}

// Decision is what the policy says for one repository and tag.
type Decision struct {
	Rule string
	Mode Mode
	// Verify checks ref's signatures against the rule's trusted keys. A
	// returned error is transient (registry unreachable), never a verdict.
	Verify func(ctx context.Context, ref name.Digest) (Check, error)
}

// Policy decides per repository (ECR name, without the registry host) and tag.
type Policy interface {
	Decide(repository, tag string) Decision
}

// SignEverything is the policy when none is configured: one rule, sign.
type SignEverything struct{}

// Decide implements Policy.
func (SignEverything) Decide(string, string) Decision {
	return Decision{Rule: "default", Mode: ModeSign}
}

// Outcomes of Handle besides the verdict outcomes.
const Skipped = "SKIPPED"

// Result is what Handle did with one event, for logs and the Lambda's answer.
type Result struct {
	Outcome     string   `json:"outcome"`
	Reason      string   `json:"reason,omitempty"`
	Repository  string   `json:"repository,omitempty"`
	Digest      string   `json:"digest,omitempty"`
	Tag         string   `json:"tag,omitempty"`
	Rule        string   `json:"rule,omitempty"`
	Changed     bool     `json:"changed"`
	Signature   string   `json:"signatureManifest,omitempty"`
	Attestation string   `json:"attestationManifest,omitempty"`
	Platforms   []Result `json:"platforms,omitempty"`
}

// Pipeline handles ECR events. Build it with New.
type Pipeline struct {
	registry string // registry host; empty: derived from each event's account and region
	reg      Registry
	signer   Signer
	store    Store
	policy   Policy
	version  string
	now      func() time.Time
	lockTTL  time.Duration
}

// Option configures a Pipeline.
type Option func(*Pipeline) error

// WithRegistry pins the registry host (for example 127.0.0.1:5000) instead
// of deriving ACCOUNT.dkr.ecr.REGION.amazonaws.com from each event.
func WithRegistry(host string) Option {
	return func(p *Pipeline) error {
		if _, err := name.NewRegistry(host); err != nil {
			return fmt.Errorf("registry %q: %w", host, err)
		}
		p.registry = host
		return nil
	}
}

// WithPolicy sets the repository policy (default: SignEverything).
func WithPolicy(pol Policy) Option {
	return func(p *Pipeline) error {
		if pol == nil {
			return errors.New("nil policy")
		}
		p.policy = pol
		return nil
	}
}

// WithVersion sets the signet version recorded in verdicts and attestations.
func WithVersion(v string) Option {
	return func(p *Pipeline) error { p.version = v; return nil }
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option {
	return func(p *Pipeline) error { p.now = now; return nil }
}

// New returns a Pipeline.
func New(reg Registry, signer Signer, store Store, opts ...Option) (*Pipeline, error) {
	if reg == nil || signer == nil || store == nil {
		return nil, errors.New("pipeline needs a registry, a signer and a store")
	}
	p := &Pipeline{reg: reg, signer: signer, store: store, policy: SignEverything{}, version: "dev", now: time.Now, lockTTL: 2 * time.Minute}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, fmt.Errorf("configuring pipeline: %w", err)
		}
	}
	return p, nil
}

// Handle acts on one parsed event. A returned error is transient or a
// configuration problem: the event must be retried, and dead-lettered at the
// end, never dropped. Everything about the image itself is in the Result.
func (p *Pipeline) Handle(ctx context.Context, t ecrevent.Target) (Result, error) {
	host := p.registry
	if host == "" {
		host = fmt.Sprintf("%s.dkr.ecr.%s.amazonaws.com", t.Account, t.Region)
		if strings.HasPrefix(t.Region, "cn-") {
			host += ".cn" // the aws-cn partition
		}
		if !ecrauth.IsECR(host) {
			return Result{Outcome: Skipped, Reason: fmt.Sprintf("account %q and region %q do not name an ECR registry", t.Account, t.Region)}, nil
		}
	}
	ref, err := name.NewDigest(host + "/" + t.Repository + "@" + t.Digest)
	if err != nil {
		return Result{Outcome: Skipped, Reason: fmt.Sprintf("not an image reference: %v", err)}, nil
	}
	res := Result{Repository: ref.Context().Name(), Digest: t.Digest, Tag: t.Tag}

	unlock, err := p.lock(ctx, res.Repository, t.Digest)
	if err != nil {
		return res, err
	}
	defer unlock()

	if t.Action == ecrevent.ActionDel {
		return p.deleted(ctx, ref, t, res)
	}
	desc, err := p.reg.Get(ctx, ref)
	if errors.Is(err, oci.ErrNotFound) {
		res.Outcome, res.Reason = Skipped, "manifest not found in the registry (deleted since the push?)"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	kind, why, err := oci.Classify(desc.MediaType, desc.Manifest)
	if err != nil {
		res.Outcome, res.Reason = Skipped, fmt.Sprintf("unreadable manifest: %v", err)
		return res, nil
	}
	if kind == oci.KindArtifact {
		res.Outcome, res.Reason = Skipped, "signature artifact, not signed again: "+why
		return res, nil
	}
	cur, err := p.store.Get(ctx, res.Repository, t.Digest)
	if err != nil && !errors.Is(err, verdict.ErrNotFound) {
		return res, err
	}
	if kind == oci.KindImage && t.Tag == "" && cur.IndexDigest != "" && cur.Outcome != verdict.Deleted {
		res.Outcome = Skipped
		res.Reason = fmt.Sprintf("platform manifest of image index %s: its verdict follows the index", cur.IndexDigest)
		return res, nil
	}
	d := p.decide(t.Repository, append(slices.Clone(cur.Tags), t.Tag))
	res.Rule = d.Rule
	if d.Mode == ModeIgnore {
		res.Outcome, res.Reason = Skipped, fmt.Sprintf("policy rule %q ignores this repository", d.Rule)
		return res, nil
	}
	tgt := target{ref: ref, mediaType: string(desc.MediaType), tag: t.Tag, event: t, prev: cur}
	if kind == oci.KindIndex {
		return p.index(ctx, desc, tgt, d, res)
	}
	return p.one(ctx, tgt, d, res)
}

// lock takes the lease on a digest. The lease lasts no longer than the work
// may (ctx's deadline, a few seconds more), so a worker that dies holding it
// delays a retry by seconds, not minutes; releasing it gets a second of its
// own, whatever is left of ctx.
func (p *Pipeline) lock(ctx context.Context, repository, digest string) (func(), error) {
	ttl := p.lockTTL
	if dl, ok := ctx.Deadline(); ok {
		ttl = min(ttl, time.Until(dl)+5*time.Second)
	}
	release, err := p.store.Lock(ctx, repository, digest, ttl)
	if err != nil {
		return nil, err
	}
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = release(rctx) // an unreleased lease expires by itself
	}, nil
}

// decide applies the policy to every tag the digest is known by, and takes
// the strictest answer: a verdict belongs to the digest, so no tag may earn
// it a laxer rule than another tag of the same digest (verify over sign over
// ignore; every verify rule that applies must pass).
func (p *Pipeline) decide(repository string, tags []string) Decision {
	slices.Sort(tags)
	tags = slices.Compact(slices.DeleteFunc(tags, func(t string) bool { return t == "" }))
	if len(tags) == 0 {
		tags = []string{""}
	}
	var sign, ignore *Decision
	var verify []Decision
	for _, tag := range tags {
		d := p.policy.Decide(repository, tag)
		switch d.Mode {
		case ModeVerify:
			if !slices.ContainsFunc(verify, func(v Decision) bool { return v.Rule == d.Rule }) {
				verify = append(verify, d)
			}
		case ModeSign:
			if sign == nil {
				sign = &d
			}
		case ModeIgnore:
			if ignore == nil {
				ignore = &d
			}
		default:
			return d // an unknown mode fails in one(), loudly
		}
	}
	switch {
	case len(verify) == 1:
		return verify[0]
	case len(verify) > 1:
		names := make([]string, len(verify))
		for i, v := range verify {
			names[i] = v.Rule
		}
		return Decision{Rule: strings.Join(names, "+"), Mode: ModeVerify, Verify: func(ctx context.Context, ref name.Digest) (Check, error) {
			var last Check
			for _, v := range verify {
				c, err := v.Verify(ctx, ref)
				if err != nil || !c.OK {
					if c.Reason != "" {
						c.Reason = fmt.Sprintf("rule %q: %s", v.Rule, c.Reason)
					}
					return c, err
				}
				last = c
			}
			return last, nil
		}}
	case sign != nil:
		return *sign
	default:
		return *ignore
	}
}

// target is one digest to decide about, with what is known of it.
type target struct {
	ref       name.Digest
	mediaType string
	tag       string
	index     string // digest of the index it was reached through
	platform  string
	viaIndex  *Check // the index's verification, for platform manifests
	event     ecrevent.Target
	prev      verdict.Verdict // the stored verdict, read under the lease (zero if none)
}

// one signs or verifies one digest and records its verdict.
func (p *Pipeline) one(ctx context.Context, t target, d Decision, res Result) (Result, error) {
	v := verdict.Verdict{
		Repository: t.ref.Context().Name(), Digest: t.ref.DigestStr(), Mode: string(d.Mode), Rule: d.Rule,
		MediaType: t.mediaType, IndexDigest: t.index, Platform: t.platform,
		EventID: t.event.EventID, EventTime: t.event.Time, SignetVersion: p.version,
	}
	if t.tag != "" {
		v.Tags = []string{t.tag}
	}
	switch d.Mode {
	case ModeSign:
		sig, err := p.sign(ctx, t.ref)
		if errors.Is(err, oci.ErrImmutableTag) {
			v.Outcome, v.Reason = verdict.Rejected, "cannot write the signature: "+immutableHint
			break
		}
		if errors.Is(err, oci.ErrNotSignatureImage) {
			v.Outcome, v.Reason = verdict.Rejected, "cannot write the signature: "+err.Error()
			break
		}
		if err != nil {
			return res, err
		}
		v.Outcome, v.Reason, v.KeyID, v.SignatureDigest = verdict.Signed, "signed by signet", p.signer.KeyID(), sig.String()
		res.Signature = sig.String()
	case ModeVerify:
		if d.Verify == nil {
			return res, fmt.Errorf("policy rule %q is in verify mode without a verifier", d.Rule)
		}
		c, err := d.Verify(ctx, t.ref)
		if err != nil {
			return res, fmt.Errorf("verifying %s: %w", t.ref, err)
		}
		if !c.OK && t.viaIndex != nil && t.viaIndex.OK {
			c = *t.viaIndex
			c.Reason = "verified through its image index " + t.index
		}
		if !c.OK {
			v.Outcome, v.Reason = verdict.Rejected, c.Reason
			break
		}
		v.Outcome, v.KeyID, v.SignatureDigest = verdict.Verified, c.KeyID, c.SignatureDigest
		v.Reason = c.Reason
		if v.Reason == "" {
			v.Reason = "signature verified with trusted key " + c.KeyID
		}
	default:
		return res, fmt.Errorf("policy rule %q has unknown mode %q", d.Rule, d.Mode)
	}
	if v.Outcome.Allowed() {
		att, err := p.attest(ctx, t.ref, d)
		if errors.Is(err, oci.ErrImmutableTag) {
			v.Outcome, v.Reason = verdict.Rejected, "cannot write the attestation: "+immutableHint
		} else if errors.Is(err, oci.ErrNotSignatureImage) {
			v.Outcome, v.Reason = verdict.Rejected, "cannot write the attestation: "+err.Error()
		} else if err != nil {
			return res, err
		} else {
			v.AttestationDigest = att.String()
			res.Attestation = att.String()
		}
	}
	if v.Outcome == verdict.Rejected && d.Mode == ModeVerify {
		if err := p.revoke(ctx, t.ref); err != nil {
			return res, err
		}
	}
	got, changed, err := p.record(ctx, v, t.prev)
	if err != nil {
		return res, err
	}
	res.Outcome, res.Reason, res.Changed = string(got.Outcome), got.Reason, changed
	return res, nil
}

// revoke withdraws signet's own signature and attestation from a digest it
// rejected (signed earlier under a laxer rule, say), so that cosign and
// Kyverno with signet's key agree with the verdict. Others' layers stay.
func (p *Pipeline) revoke(ctx context.Context, ref name.Digest) error {
	mine := func(l oci.Layer) bool {
		return p.signer.SignedImage(ctx, ref, l.Content, l.Annotations[signing.SignatureAnnotation])
	}
	if _, err := p.reg.Remove(ctx, oci.SignatureTag(ref), signing.SimpleSigningMediaType, mine); err != nil && !errors.Is(err, oci.ErrNotSignatureImage) {
		return fmt.Errorf("withdrawing signet's signature from %s: %w", ref, err)
	}
	att := func(l oci.Layer) bool {
		return p.signer.AttestedImage(ctx, ref, l.Content, signing.VSAPredicateType)
	}
	if _, err := p.reg.Remove(ctx, oci.AttestationTag(ref), signing.DSSEMediaType, att); err != nil && !errors.Is(err, oci.ErrNotSignatureImage) {
		return fmt.Errorf("withdrawing signet's attestation from %s: %w", ref, err)
	}
	return nil
}

const immutableHint = "the repository has immutable tags; set its tag mutability to IMMUTABLE_WITH_EXCLUSION with an exclusion for sha256-* so signature tags can be updated"

// record writes v, keeping what an earlier event learnt that this one could
// not: a platform manifest pushed on its own keeps its link to its index, and
// a verdict reached through a verified index is not overturned by the
// platform manifest's own (unsigned) push.
func (p *Pipeline) record(ctx context.Context, v verdict.Verdict, prev verdict.Verdict) (verdict.Verdict, bool, error) {
	if v.IndexDigest == "" && prev.IndexDigest != "" && prev.Outcome != verdict.Deleted {
		if prev.Allowed() && !v.Allowed() {
			return prev, false, nil
		}
		v.IndexDigest, v.Platform = prev.IndexDigest, prev.Platform
	}
	return p.store.Record(ctx, v)
}

// index decides about an image index and each of its platform manifests.
func (p *Pipeline) index(ctx context.Context, desc *remote.Descriptor, t target, d Decision, res Result) (Result, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		res.Outcome, res.Reason = Skipped, fmt.Sprintf("unreadable image index: %v", err)
		return res, nil
	}
	im, err := idx.IndexManifest()
	if err != nil {
		res.Outcome, res.Reason = Skipped, fmt.Sprintf("unreadable image index: %v", err)
		return res, nil
	}
	top, err := p.one(ctx, t, d, res)
	if err != nil {
		return top, err
	}
	var via *Check
	if d.Mode == ModeVerify && top.Outcome == string(verdict.Verified) {
		v, err := p.store.Get(ctx, t.ref.Context().Name(), t.ref.DigestStr())
		if err != nil {
			return top, err
		}
		via = &Check{OK: true, KeyID: v.KeyID, SignatureDigest: v.SignatureDigest}
	}
	for _, m := range im.Manifests {
		if !m.MediaType.IsImage() {
			continue // nested indexes are not platforms
		}
		if m.Platform != nil && m.Platform.OS == "unknown" {
			continue // buildx attestation manifests (unknown/unknown)
		}
		child := t.ref.Context().Digest(m.Digest.String())
		cd, err := p.reg.Get(ctx, child)
		if errors.Is(err, oci.ErrNotFound) {
			continue
		}
		if err != nil {
			return top, err
		}
		if kind, _, err := oci.Classify(cd.MediaType, cd.Manifest); err != nil || kind != oci.KindImage {
			continue // an artifact listed in the index, not a platform image
		}
		ct := target{ref: child, mediaType: string(m.MediaType), index: t.ref.DigestStr(), platform: platformString(m.Platform), viaIndex: via, event: t.event}
		unlock, err := p.lock(ctx, ct.ref.Context().Name(), ct.ref.DigestStr())
		if err != nil {
			return top, err
		}
		cr, err := p.one(ctx, ct, d, Result{Repository: ct.ref.Context().Name(), Digest: ct.ref.DigestStr()})
		unlock()
		if err != nil {
			return top, fmt.Errorf("platform %s of %s: %w", ct.platform, t.ref, err)
		}
		top.Platforms = append(top.Platforms, cr)
	}
	return top, nil
}

func platformString(p *v1.Platform) string {
	if p == nil {
		return ""
	}
	return p.String()
}

// sign appends signet's signature to the digest's .sig tag, unless this key
// already signed it, and returns the tag's manifest digest.
func (p *Pipeline) sign(ctx context.Context, ref name.Digest) (v1.Hash, error) {
	r, err := p.reg.Append(ctx, oci.SignatureTag(ref), signing.SimpleSigningMediaType,
		func(l oci.Layer) bool {
			return p.signer.SignedImage(ctx, ref, l.Content, l.Annotations[signing.SignatureAnnotation])
		},
		func() (mutate.Addendum, error) {
			pl, sig, err := p.signer.SignImage(ctx, ref)
			if err != nil {
				return mutate.Addendum{}, err
			}
			return mutate.Addendum{
				Layer:       static.NewLayer(pl, signing.SimpleSigningMediaType),
				MediaType:   signing.SimpleSigningMediaType,
				Annotations: map[string]string{signing.SignatureAnnotation: sig},
			}, nil
		})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("signing %s: %w", ref, err)
	}
	return r.Digest, nil
}

// attest appends signet's verification summary to the digest's .att tag,
// unless this key already attested it.
func (p *Pipeline) attest(ctx context.Context, ref name.Digest, d Decision) (v1.Hash, error) {
	r, err := p.reg.Append(ctx, oci.AttestationTag(ref), signing.DSSEMediaType,
		func(l oci.Layer) bool {
			return p.signer.AttestedImage(ctx, ref, l.Content, signing.VSAPredicateType)
		},
		func() (mutate.Addendum, error) {
			st, err := signing.Statement(ref, signing.Summary{
				VerifierID: "https://github.com/signet-dev/signet@" + p.version,
				Time:       p.now(),
				PolicyURI:  fmt.Sprintf("signet:policy/%s#%s", d.Rule, d.Mode),
				Result:     "PASSED",
			})
			if err != nil {
				return mutate.Addendum{}, err
			}
			env, err := p.signer.Attest(ctx, st)
			if err != nil {
				return mutate.Addendum{}, err
			}
			return mutate.Addendum{
				Layer:     static.NewLayer(env, signing.DSSEMediaType),
				MediaType: signing.DSSEMediaType,
				Annotations: map[string]string{
					signing.SignatureAnnotation: "",
					signing.PredicateAnnotation: signing.VSAPredicateType,
				},
			}, nil
		})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("attesting %s: %w", ref, err)
	}
	return r.Digest, nil
}

// deleted marks a deleted image's verdict DELETED, once the registry no
// longer has the digest: a DELETE that only removed one tag changes nothing.
func (p *Pipeline) deleted(ctx context.Context, ref name.Digest, t ecrevent.Target, res Result) (Result, error) {
	if _, err := p.store.Get(ctx, res.Repository, t.Digest); errors.Is(err, verdict.ErrNotFound) {
		res.Outcome, res.Reason = Skipped, "deleted digest has no verdict"
		return res, nil
	} else if err != nil {
		return res, err
	}
	if _, err := p.reg.Get(ctx, ref); err == nil {
		res.Outcome, res.Reason = Skipped, fmt.Sprintf("tag %q removed but the digest is still in the repository", t.Tag)
		return res, nil
	} else if !errors.Is(err, oci.ErrNotFound) {
		return res, err
	}
	got, changed, err := p.store.Record(ctx, verdict.Verdict{
		Repository: res.Repository, Digest: t.Digest, Outcome: verdict.Deleted, Mode: "delete",
		Reason: "image deleted from the repository", EventID: t.EventID, EventTime: t.Time, SignetVersion: p.version,
	})
	if err != nil {
		return res, err
	}
	res.Outcome, res.Reason, res.Changed = string(got.Outcome), got.Reason, changed
	return res, nil
}
