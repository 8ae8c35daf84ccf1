// Package admission answers, at deploy time, whether the images of a
// Kubernetes object may run: AdmissionReview -> images -> verdicts -> allow,
// warn or deny.
//
// The answer comes from the verdicts the signer recorded for each image's
// repository and digest, so admission costs one key-value read per image (and
// usually none, thanks to a short-lived cache) and never a registry round-trip,
// unless tag resolution is turned on. The same Checker backs the
// `signet verdict` command, so a pipeline can ask the question the cluster
// will ask before it deploys.
package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/signet-dev/signet/internal/cache"
	"github.com/signet-dev/signet/internal/imageref"
	"github.com/signet-dev/signet/internal/verdict"
)

// Code classifies the answer for one image.
type Code string

// The codes a Result can have. Only CodeAllowed lets an image run;
// CodeStoreError and CodeRegistryError are transient failures, which the
// webhook's failure policy turns into a denial or an admission.
const (
	CodeAllowed       Code = "allowed"           // the verdict is SIGNED or VERIFIED
	CodeDenied        Code = "verdict-denies"    // the verdict is REJECTED or DELETED
	CodeNoVerdict     Code = "no-verdict"        // nothing recorded for this repository and digest
	CodeNotPinned     Code = "not-pinned"        // a tag without a digest, and tags are not resolved
	CodeInvalid       Code = "invalid-reference" // not an image reference
	CodeUnknownTag    Code = "unknown-tag"       // the registry does not have the tag
	CodeStoreError    Code = "store-error"       // the verdict store could not be read
	CodeRegistryError Code = "registry-error"    // the registry could not be asked
)

// Result is the answer for one image.
type Result struct {
	// Image is the reference as written.
	Image string `json:"image"`
	// Repository and Digest are the verdict's key, when known.
	Repository string `json:"repository,omitempty"`
	Digest     string `json:"digest,omitempty"`
	// Tag is the tag as written, if any.
	Tag string `json:"tag,omitempty"`
	// Resolved is true when the digest came from the registry, not the reference.
	Resolved bool `json:"resolved,omitempty"`
	// Code classifies the answer; Allowed is Code == CodeAllowed.
	Code    Code `json:"code"`
	Allowed bool `json:"allowed"`
	// Reason says why, in words a person can act on.
	Reason string `json:"reason"`
	// Verdict is the stored verdict, if there is one.
	Verdict *verdict.Verdict `json:"verdict,omitempty"`
	// Cached is true when the verdict (or its absence) came from the cache.
	Cached bool `json:"-"`
	// Err is the underlying error of a failure.
	Err error `json:"-"`
}

// Transient reports whether the result is a failure to find the answer
// rather than an answer.
func (r Result) Transient() bool { return r.Code == CodeStoreError || r.Code == CodeRegistryError }

// Pinned returns the reference to deploy, repository[:tag]@digest, when the
// digest is known.
func (r Result) Pinned() string {
	if r.Repository == "" || r.Digest == "" {
		return ""
	}
	if r.Tag != "" {
		return r.Repository + ":" + r.Tag + "@" + r.Digest
	}
	return r.Repository + "@" + r.Digest
}

// Checker finds the verdict for an image reference.
type Checker struct {
	verdicts verdict.Reader
	resolver imageref.Resolver
	metrics  *Metrics

	cache       *cache.LRU[string, cached]
	tags        *cache.LRU[string, string]
	ttl, negTTL time.Duration
}

type cached struct {
	v     verdict.Verdict
	found bool
}

// CheckerOption configures a Checker.
type CheckerOption func(*Checker)

// WithResolver lets the Checker resolve an image given by tag alone to its
// digest by asking the registry. Without it such images are denied with a
// request to pin them by digest.
func WithResolver(r imageref.Resolver) CheckerOption {
	return func(c *Checker) { c.resolver = r }
}

// WithCache keeps up to size answers: a verdict for ttl, the absence of one
// for negativeTTL, and a tag's digest for ttl. Failures are never kept.
func WithCache(size int, ttl, negativeTTL time.Duration) CheckerOption {
	return func(c *Checker) {
		c.cache = cache.New[string, cached](size)
		c.tags = cache.New[string, string](size)
		c.ttl, c.negTTL = ttl, negativeTTL
	}
}

// WithMetrics counts cache hits and misses, store errors and tag resolutions.
func WithMetrics(m *Metrics) CheckerOption {
	return func(c *Checker) { c.metrics = m }
}

// NewChecker returns a Checker that reads verdicts from r.
func NewChecker(r verdict.Reader, opts ...CheckerOption) *Checker {
	c := &Checker{verdicts: r}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Check answers for one image reference. It never returns an error: a
// failure is a Result with a transient Code and Err set.
func (c *Checker) Check(ctx context.Context, image string) Result {
	res := Result{Image: image}
	ref, err := imageref.Parse(image)
	if err != nil {
		res.Code, res.Err = CodeInvalid, err
		res.Reason = fmt.Sprintf("not a valid image reference: %v", unwrapInvalid(err))
		return res
	}
	res.Repository, res.Tag, res.Digest = ref.Repository, ref.Tag, ref.Digest
	if !ref.Pinned() {
		if c.resolver == nil {
			res.Code = CodeNotPinned
			res.Reason = fmt.Sprintf("not pinned by digest; signet admits images by digest: deploy %s:%s@sha256:<digest> (`signet verdict %s` prints it)",
				ref.Repository, ref.Tag, image)
			return res
		}
		d, err := c.resolve(ctx, ref)
		if err != nil {
			res.Err = err
			var te *transport.Error
			if errors.As(err, &te) && (te.StatusCode == http.StatusNotFound) {
				res.Code = CodeUnknownTag
				res.Reason = fmt.Sprintf("tag %s not found in %s", ref.Tag, ref.Repository)
			} else {
				res.Code = CodeRegistryError
				res.Reason = fmt.Sprintf("could not resolve tag %s of %s to a digest: %v", ref.Tag, ref.Repository, err)
			}
			return res
		}
		res.Digest, res.Resolved = d, true
	}

	v, found, hit, err := c.lookup(ctx, res.Repository, res.Digest)
	res.Cached = hit
	switch {
	case err != nil:
		res.Code, res.Err = CodeStoreError, err
		res.Reason = fmt.Sprintf("could not read the verdict store: %v", err)
	case !found:
		res.Code = CodeNoVerdict
		res.Reason = fmt.Sprintf("no signet verdict for %s@%s: signet has not signed or verified this digest in this repository", res.Repository, res.Digest)
	default:
		res.Verdict = &v
		res.Allowed = v.Allowed()
		res.Code = CodeDenied
		if res.Allowed {
			res.Code = CodeAllowed
		}
		res.Reason = string(v.Outcome)
		if v.Reason != "" {
			res.Reason += ": " + v.Reason
		}
	}
	return res
}

// CheckAll checks each distinct image once, concurrently, and returns the
// results in the order of images.
func (c *Checker) CheckAll(ctx context.Context, images []string) []Result {
	out := make([]Result, len(images))
	first := make(map[string]int, len(images))
	var wg sync.WaitGroup
	for i, img := range images {
		if _, dup := first[img]; dup {
			continue
		}
		first[img] = i
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = c.Check(ctx, img)
		}()
	}
	wg.Wait()
	for i, img := range images {
		if j := first[img]; j != i {
			out[i] = out[j]
		}
	}
	return out
}

func (c *Checker) resolve(ctx context.Context, ref imageref.Ref) (string, error) {
	key := ref.Repository + ":" + ref.Tag
	if c.tags != nil {
		if d, ok := c.tags.Get(key); ok {
			c.metrics.cache(true)
			return d, nil
		}
		c.metrics.cache(false)
	}
	d, err := c.resolver.Resolve(ctx, ref)
	c.metrics.resolved(err)
	if err != nil {
		return "", err
	}
	if c.tags != nil {
		c.tags.Add(key, d, c.ttl)
	}
	return d, nil
}

func (c *Checker) lookup(ctx context.Context, repository, digest string) (v verdict.Verdict, found, hit bool, err error) {
	key := repository + "@" + digest
	if c.cache != nil {
		if e, ok := c.cache.Get(key); ok {
			c.metrics.cache(true)
			return e.v, e.found, true, nil
		}
		c.metrics.cache(false)
	}
	v, err = c.verdicts.Get(ctx, repository, digest)
	switch {
	case errors.Is(err, verdict.ErrNotFound):
		if c.cache != nil {
			c.cache.Add(key, cached{}, c.negTTL)
		}
		return verdict.Verdict{}, false, false, nil
	case err != nil:
		c.metrics.storeError()
		return verdict.Verdict{}, false, false, err
	}
	if c.cache != nil {
		c.cache.Add(key, cached{v: v, found: true}, c.ttl)
	}
	return v, true, false, nil
}

// unwrapInvalid drops the "invalid image reference" prefix that the deny
// message already says in other words.
func unwrapInvalid(err error) string {
	s := err.Error()
	const p = "invalid image reference "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
