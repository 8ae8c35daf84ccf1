package bench

import (
	"context"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/signet-dev/signet/internal/pipeline"
	"github.com/signet-dev/signet/internal/verdict"
)

// stageTimes adds up the time the pipeline spends in KMS and in the verdict
// store. The pipeline calls its stages one after another (the signer from
// inside the registry's Append), so what is left of an image's time is the
// registry's and the pipeline's own.
type stageTimes struct {
	kms, store time.Duration
}

// since adds the time since start to *d.
func since(d *time.Duration, start time.Time) { *d += time.Since(start) }

// timedSigner is a pipeline.Signer that times the KMS calls of another.
type timedSigner struct {
	pipeline.Signer
	t *stageTimes
}

var _ pipeline.Signer = timedSigner{}

// SignImage implements pipeline.Signer.
func (s timedSigner) SignImage(ctx context.Context, ref name.Digest) ([]byte, string, error) {
	defer since(&s.t.kms, time.Now())
	return s.Signer.SignImage(ctx, ref)
}

// Attest implements pipeline.Signer.
func (s timedSigner) Attest(ctx context.Context, statement []byte) ([]byte, error) {
	defer since(&s.t.kms, time.Now())
	return s.Signer.Attest(ctx, statement)
}

// timedStore is a pipeline.Store that times the calls of another, the lock's
// release included.
type timedStore struct {
	pipeline.Store
	t *stageTimes
}

var _ pipeline.Store = timedStore{}

// Get implements verdict.Reader.
func (s timedStore) Get(ctx context.Context, repository, digest string) (verdict.Verdict, error) {
	defer since(&s.t.store, time.Now())
	return s.Store.Get(ctx, repository, digest)
}

// Record implements verdict.Writer.
func (s timedStore) Record(ctx context.Context, v verdict.Verdict) (verdict.Verdict, bool, error) {
	defer since(&s.t.store, time.Now())
	return s.Store.Record(ctx, v)
}

// Lock implements pipeline.Store.
func (s timedStore) Lock(ctx context.Context, repository, digest string, ttl time.Duration) (func(context.Context) error, error) {
	defer since(&s.t.store, time.Now())
	unlock, err := s.Store.Lock(ctx, repository, digest, ttl)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		defer since(&s.t.store, time.Now())
		return unlock(ctx)
	}, nil
}
