package verdict_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/testenv"
	"github.com/signet-dev/signet/internal/verdict"
)

const (
	repo   = "127.0.0.1:5000/team/api"
	digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func signed(t0 time.Time, tags ...string) verdict.Verdict {
	return verdict.Verdict{
		Repository: repo, Digest: digest, Outcome: verdict.Signed, Reason: "signed by signet",
		Mode: "sign", KeyID: "awskms:///alias/k", SignatureDigest: "sha256:aa", Tags: tags,
		EventID: "e1", EventTime: t0,
	}
}

func TestRecordConvergesAndAudits(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

	if _, err := d.Store.Get(ctx, repo, digest); !errors.Is(err, verdict.ErrNotFound) {
		t.Fatalf("Get before any write = %v, want ErrNotFound", err)
	}

	var wg sync.WaitGroup
	changed := make(chan bool, 10)
	for range 10 {
		wg.Go(func() {
			_, ch, err := d.Store.Record(ctx, signed(t0, "1.4"))
			if err != nil {
				t.Errorf("Record: %v", err)
			}
			changed <- ch
		})
	}
	wg.Wait()
	close(changed)
	n := 0
	for ch := range changed {
		if ch {
			n++
		}
	}
	if n != 1 {
		t.Errorf("10 concurrent identical Records changed the verdict %d times, want 1", n)
	}

	// A new tag for the same digest is merged, not a new decision.
	got, ch, err := d.Store.Record(ctx, signed(t0.Add(time.Second), "latest"))
	if err != nil || !ch {
		t.Fatalf("Record(new tag) = %v, %v; want changed", ch, err)
	}
	if want := []string{"1.4", "latest"}; len(got.Tags) != 2 || got.Tags[0] != want[0] || got.Tags[1] != want[1] {
		t.Errorf("tags = %v, want %v", got.Tags, want)
	}

	// A delete keeps the record, not allowed.
	del := verdict.Verdict{Repository: repo, Digest: digest, Outcome: verdict.Deleted, Reason: "image deleted", Mode: "delete", EventTime: t0.Add(2 * time.Second)}
	if _, ch, err := d.Store.Record(ctx, del); err != nil || !ch {
		t.Fatalf("Record(delete) = %v, %v", ch, err)
	}
	// A stale push (older than the delete) does not resurrect it.
	if _, ch, err := d.Store.Record(ctx, signed(t0, "1.4")); err != nil || ch {
		t.Fatalf("Record(stale push) = %v, %v; want unchanged", ch, err)
	}
	got, err = d.Store.Get(ctx, repo, digest)
	if err != nil {
		t.Fatal(err)
	}
	if got.Outcome != verdict.Deleted || got.Allowed() || got.SignatureDigest != "sha256:aa" {
		t.Errorf("after delete: %+v, want DELETED keeping the signature digest", got)
	}
	hist, err := d.Store.History(ctx, repo, digest)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 3 || hist[0].Outcome != verdict.Signed || hist[2].Outcome != verdict.Deleted {
		t.Errorf("history has %d entries %+v, want SIGNED, SIGNED(+tag), DELETED", len(hist), hist)
	}
	other, err := d.Store.ByDigest(ctx, digest)
	if err != nil || len(other) != 1 || other[0].Repository != repo {
		t.Errorf("ByDigest = %+v, %v; want the one verdict", other, err)
	}
}

func TestLockSerialises(t *testing.T) {
	testenv.AWSEnv(t)
	d := testenv.StartDynamo(t)
	ctx := context.Background()
	release, err := d.Store.Lock(ctx, repo, digest, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := d.Store.Lock(short, repo, digest, time.Minute); !errors.Is(err, verdict.ErrLocked) {
		t.Fatalf("second Lock while held = %v, want ErrLocked", err)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	release2, err := d.Store.Lock(ctx, repo, digest, time.Minute)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	_ = release2(ctx)
	// An expired lease is taken over.
	if _, err := d.Store.Lock(ctx, repo, digest, -time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store.Lock(ctx, repo, digest, time.Minute); err != nil {
		t.Fatalf("Lock over an expired lease: %v", err)
	}
}
