// Package verdict holds signet's answer to "may this image run?" for one
// repository and digest, and the stores that keep it.
//
// A Verdict is written by the signer when it signs, verifies or sees a delete,
// and read at deploy time by the admission webhook and the CLI. It always binds
// a repository (registry host included) to a digest: the same digest in another
// repository has a verdict of its own.
package verdict

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Outcome is what signet decided about a digest.
type Outcome string

// The outcomes a verdict can have.
const (
	// Signed means signet signed the digest with its KMS key.
	Signed Outcome = "SIGNED"
	// Verified means the digest carries a signature by a trusted key.
	Verified Outcome = "VERIFIED"
	// Rejected means the digest failed its repository's policy.
	Rejected Outcome = "REJECTED"
	// Deleted means the image was deleted from its repository.
	Deleted Outcome = "DELETED"
)

// Allowed reports whether an image with this outcome may run.
func (o Outcome) Allowed() bool { return o == Signed || o == Verified }

// Valid reports whether o is one of the known outcomes.
func (o Outcome) Valid() bool {
	switch o {
	case Signed, Verified, Rejected, Deleted:
		return true
	}
	return false
}

// Verdict is the record for one repository and digest.
type Verdict struct {
	// Repository is the full repository name, registry host included,
	// for example 123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api.
	Repository string `dynamodbav:"repository" json:"repository"`
	// Digest is the manifest digest, sha256:<64 hex>.
	Digest  string  `dynamodbav:"digest" json:"digest"`
	Outcome Outcome `dynamodbav:"outcome" json:"outcome"`
	// Reason says why, in words a person can act on.
	Reason string `dynamodbav:"reason" json:"reason"`
	// Mode is the policy mode that produced the verdict: sign, verify or delete.
	Mode string `dynamodbav:"mode,omitempty" json:"mode,omitempty"`
	// Rule names the policy rule that matched.
	Rule string `dynamodbav:"rule,omitempty" json:"rule,omitempty"`
	// KeyID identifies the key that signed or whose signature verified.
	KeyID string `dynamodbav:"keyId,omitempty" json:"keyId,omitempty"`
	// SignatureDigest and AttestationDigest are the digests of the
	// sha256-<hex>.sig and .att manifests signet wrote or found.
	SignatureDigest   string `dynamodbav:"signatureDigest,omitempty" json:"signatureDigest,omitempty"`
	AttestationDigest string `dynamodbav:"attestationDigest,omitempty" json:"attestationDigest,omitempty"`
	// MediaType is the pushed manifest's media type.
	MediaType string `dynamodbav:"mediaType,omitempty" json:"mediaType,omitempty"`
	// IndexDigest links a platform manifest to the image index it belongs to.
	IndexDigest string `dynamodbav:"indexDigest,omitempty" json:"indexDigest,omitempty"`
	// Platform is os/arch[/variant] for a platform manifest of an index.
	Platform string `dynamodbav:"platform,omitempty" json:"platform,omitempty"`
	// Tags are the tags seen on push events for this digest.
	Tags []string `dynamodbav:"tags,omitempty" json:"tags,omitempty"`
	// EventID and EventTime identify the event that last changed the verdict.
	EventID   string    `dynamodbav:"eventId,omitempty" json:"eventId,omitempty"`
	EventTime time.Time `dynamodbav:"eventTime" json:"eventTime"`
	// UpdatedAt is when the verdict was last written.
	UpdatedAt time.Time `dynamodbav:"updatedAt" json:"updatedAt"`
	// SignetVersion is the version of signet that wrote it.
	SignetVersion string `dynamodbav:"signetVersion,omitempty" json:"signetVersion,omitempty"`
	// Revision counts the changes; the store uses it for conditional writes.
	Revision int64 `dynamodbav:"revision" json:"revision"`
}

// Allowed reports whether the verdict lets the image run.
func (v Verdict) Allowed() bool { return v.Outcome.Allowed() }

// sameDecision reports whether a and b say the same thing about the image,
// ignoring bookkeeping (times, event, revision) and tags.
func sameDecision(a, b Verdict) bool {
	return a.Repository == b.Repository && a.Digest == b.Digest && a.Outcome == b.Outcome &&
		a.Reason == b.Reason && a.Mode == b.Mode && a.Rule == b.Rule && a.KeyID == b.KeyID &&
		a.SignatureDigest == b.SignatureDigest && a.AttestationDigest == b.AttestationDigest &&
		a.MediaType == b.MediaType && a.IndexDigest == b.IndexDigest && a.Platform == b.Platform
}

// mergeTags returns the sorted union of a and b.
func mergeTags(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// ErrNotFound is returned by Get when there is no verdict for the digest.
var ErrNotFound = errors.New("no verdict")

// ErrLocked is returned when another worker holds the lease for a digest
// beyond the caller's patience; it is transient.
var ErrLocked = errors.New("digest is locked by another worker")

// Reader reads verdicts. The webhook and the CLI need nothing more.
type Reader interface {
	// Get returns the verdict for repository and digest, or ErrNotFound.
	Get(ctx context.Context, repository, digest string) (Verdict, error)
}

// Writer records verdicts.
type Writer interface {
	// Record writes v as the verdict for its repository and digest, unless
	// the stored verdict already says the same or comes from a newer event.
	// It returns the verdict now stored and whether this call changed it.
	Record(ctx context.Context, v Verdict) (Verdict, bool, error)
}

// Store reads and writes verdicts.
type Store interface {
	Reader
	Writer
}
