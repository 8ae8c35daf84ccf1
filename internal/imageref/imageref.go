// Package imageref turns the image strings found in Kubernetes objects and on
// command lines into the (repository, digest) pairs that signet's verdicts are
// keyed by.
//
// Names are normalised as a container runtime does (a bare name lives on
// Docker Hub under library/, a first element with a dot, a colon or
// "localhost" is a registry host), using go-containerregistry's name package,
// so the repository is exactly what name.Reference.Context().Name() prints,
// the form the signer writes verdicts under.
package imageref

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Ref is a parsed image reference.
type Ref struct {
	// Original is the string as written.
	Original string
	// Repository is the full repository name, registry host included,
	// for example index.docker.io/library/nginx.
	Repository string
	// Tag is the tag if one was written, else empty. A reference with
	// neither tag nor digest has Tag "latest", as a runtime would pull.
	Tag string
	// Digest is the manifest digest if one was written, else empty.
	Digest string

	repo name.Repository
}

// ErrInvalid is wrapped by Parse's errors: the string is not an image reference.
var ErrInvalid = errors.New("invalid image reference")

// Parse normalises s. A reference with both a tag and a digest keeps both;
// the digest is what a runtime pulls.
func Parse(s string) (Ref, error) {
	if s == "" {
		return Ref{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	if strings.TrimSpace(s) != s {
		return Ref{}, fmt.Errorf("%w %q: leading or trailing space", ErrInvalid, s)
	}
	r := Ref{Original: s}
	base := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		d, err := name.NewDigest(s, name.WeakValidation)
		if err != nil {
			return Ref{}, fmt.Errorf("%w %q: %v", ErrInvalid, s, err)
		}
		r.Digest = d.DigestStr()
		base = s[:i]
	}
	tag, err := name.NewTag(base, name.WeakValidation)
	if err != nil {
		return Ref{}, fmt.Errorf("%w %q: %v", ErrInvalid, s, err)
	}
	r.repo = tag.Repository
	r.Repository = tag.Context().Name()
	if hasTag(base) || r.Digest == "" {
		r.Tag = tag.TagStr()
	}
	return r, nil
}

// hasTag reports whether a reference without its digest names a tag: a colon
// after the last slash (a colon before it belongs to a registry port).
func hasTag(base string) bool {
	return strings.LastIndexByte(base, ':') > strings.LastIndexByte(base, '/')
}

// Pinned reports whether the reference carries a digest.
func (r Ref) Pinned() bool { return r.Digest != "" }

// WithDigest returns repository[:tag]@digest, the reference to deploy.
func (r Ref) WithDigest(digest string) string {
	if r.Tag != "" {
		return r.Repository + ":" + r.Tag + "@" + digest
	}
	return r.Repository + "@" + digest
}

// String returns the normalised reference.
func (r Ref) String() string {
	switch {
	case r.Digest != "":
		return r.WithDigest(r.Digest)
	default:
		return r.Repository + ":" + r.Tag
	}
}

// Name returns the go-containerregistry reference: the digest when there is
// one, else the tag.
func (r Ref) Name() name.Reference {
	if r.Digest != "" {
		return r.repo.Digest(r.Digest)
	}
	return r.repo.Tag(r.Tag)
}

// Resolver finds the digest a tag points at.
type Resolver interface {
	// Resolve returns the manifest digest of ref, which has a tag and no digest.
	Resolve(ctx context.Context, ref Ref) (string, error)
}
