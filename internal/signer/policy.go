package signer

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/signet-dev/signet/internal/pipeline"
	"github.com/signet-dev/signet/internal/policy"
	"github.com/signet-dev/signet/internal/verify"
)

// RepositoryPolicy adapts a parsed policy to the pipeline: verify rules check
// signatures with internal/verify through the registry client's options.
type RepositoryPolicy struct {
	policy *policy.Policy
	remote func(ctx context.Context) []remote.Option
}

var _ pipeline.Policy = (*RepositoryPolicy)(nil)

// NewRepositoryPolicy returns the adapter; remoteOpts gives the registry
// options (authentication, retries) bound to a context.
func NewRepositoryPolicy(p *policy.Policy, remoteOpts func(ctx context.Context) []remote.Option) *RepositoryPolicy {
	return &RepositoryPolicy{policy: p, remote: remoteOpts}
}

// Decide implements pipeline.Policy.
func (rp *RepositoryPolicy) Decide(repository, tag string) pipeline.Decision {
	r := rp.policy.Match(repository, tag)
	d := pipeline.Decision{Rule: r.Name, Mode: pipeline.Mode(r.Mode)}
	if r.Mode == policy.Verify {
		d.Verify = func(ctx context.Context, ref name.Digest) (pipeline.Check, error) {
			res, err := verify.Verify(ctx, ref, r.Keys, r.RequireAll(), rp.remote(ctx)...)
			if err != nil {
				return pipeline.Check{}, err
			}
			c := pipeline.Check{OK: res.Verified(), KeyID: res.KeyID, SignatureDigest: res.SignatureDigest}
			if c.OK {
				c.Reason = fmt.Sprintf("%s signature verified with trusted key %s", res.Format, res.KeyID)
			} else {
				c.Reason = string(res.Reason)
				if res.Detail != "" {
					c.Reason += ": " + res.Detail
				}
			}
			return c, nil
		}
	}
	return d
}
