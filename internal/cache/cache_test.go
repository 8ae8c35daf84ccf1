package cache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/signet-dev/signet/internal/cache"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLRU(t *testing.T) {
	type step struct {
		op    string // add, get, tick
		key   string
		val   int
		ttl   time.Duration
		want  int
		found bool
	}
	for _, tc := range []struct {
		name  string
		size  int
		steps []step
	}{
		{"hit before expiry", 2, []step{
			{op: "add", key: "a", val: 1, ttl: time.Minute},
			{op: "tick", ttl: 59 * time.Second},
			{op: "get", key: "a", want: 1, found: true},
		}},
		{"miss at expiry", 2, []step{
			{op: "add", key: "a", val: 1, ttl: time.Minute},
			{op: "tick", ttl: time.Minute},
			{op: "get", key: "a", found: false},
		}},
		{"per-entry ttl", 3, []step{
			{op: "add", key: "pos", val: 1, ttl: 30 * time.Second},
			{op: "add", key: "neg", val: 0, ttl: 5 * time.Second},
			{op: "tick", ttl: 10 * time.Second},
			{op: "get", key: "neg", found: false},
			{op: "get", key: "pos", want: 1, found: true},
		}},
		{"evicts least recently used", 2, []step{
			{op: "add", key: "a", val: 1, ttl: time.Minute},
			{op: "add", key: "b", val: 2, ttl: time.Minute},
			{op: "get", key: "a", want: 1, found: true}, // b is now the oldest
			{op: "add", key: "c", val: 3, ttl: time.Minute},
			{op: "get", key: "b", found: false},
			{op: "get", key: "a", want: 1, found: true},
			{op: "get", key: "c", want: 3, found: true},
		}},
		{"replace refreshes", 1, []step{
			{op: "add", key: "a", val: 1, ttl: time.Second},
			{op: "add", key: "a", val: 2, ttl: time.Minute},
			{op: "tick", ttl: 2 * time.Second},
			{op: "get", key: "a", want: 2, found: true},
		}},
		{"zero ttl removes", 2, []step{
			{op: "add", key: "a", val: 1, ttl: time.Minute},
			{op: "add", key: "a", val: 1, ttl: 0},
			{op: "get", key: "a", found: false},
		}},
		{"size zero holds nothing", 0, []step{
			{op: "add", key: "a", val: 1, ttl: time.Minute},
			{op: "get", key: "a", found: false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			c := cache.New[string, int](tc.size, cache.WithClock(clk.now))
			for i, s := range tc.steps {
				switch s.op {
				case "add":
					c.Add(s.key, s.val, s.ttl)
				case "tick":
					clk.t = clk.t.Add(s.ttl)
				case "get":
					got, ok := c.Get(s.key)
					if ok != s.found || got != s.want {
						t.Fatalf("step %d: Get(%q) = %d, %v, want %d, %v", i, s.key, got, ok, s.want, s.found)
					}
				}
			}
			if c.Len() > tc.size && tc.size >= 0 {
				t.Errorf("Len() = %d, over the bound %d", c.Len(), tc.size)
			}
		})
	}
}

func TestLRUBoundedUnderConcurrency(t *testing.T) {
	c := cache.New[string, int](100)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprint(g, "-", i%300)
				c.Add(k, i, time.Minute)
				c.Get(k)
				if i%7 == 0 {
					c.Remove(k)
				}
			}
		}()
	}
	wg.Wait()
	if c.Len() > 100 {
		t.Fatalf("Len() = %d after concurrent use, want at most 100", c.Len())
	}
}
