// Package cache is a small, bounded, thread-safe LRU cache whose entries
// expire after a time to live set per entry, so a positive answer and a
// negative one can be kept for different lengths of time.
package cache

import (
	"container/list"
	"sync"
	"time"
)

// LRU holds at most a fixed number of entries, dropping the least recently
// used one to make room, and never returns an entry past its expiry.
// The zero value is not usable; call New.
type LRU[K comparable, V any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front is most recently used
	items map[K]*list.Element
	now   func() time.Time
}

type entry[K comparable, V any] struct {
	key     K
	value   V
	expires time.Time
}

// Option configures an LRU.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock sets the clock the cache reads expiry against (default time.Now).
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// New returns a cache of at most size entries. A size below 1 gives a cache
// that holds nothing.
func New[K comparable, V any](size int, opts ...Option) *LRU[K, V] {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return &LRU[K, V]{max: size, ll: list.New(), items: make(map[K]*list.Element), now: o.now}
}

// Get returns the value for k if it is present and not expired.
func (c *LRU[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	el, ok := c.items[k]
	if !ok {
		return zero, false
	}
	e := el.Value.(*entry[K, V])
	if !c.now().Before(e.expires) {
		c.ll.Remove(el)
		delete(c.items, k)
		return zero, false
	}
	c.ll.MoveToFront(el)
	return e.value, true
}

// Add stores v for k for ttl, replacing any earlier value. A ttl of zero or
// less removes k instead.
func (c *LRU[K, V]) Add(k K, v V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		if ttl <= 0 {
			c.ll.Remove(el)
			delete(c.items, k)
			return
		}
		e := el.Value.(*entry[K, V])
		e.value, e.expires = v, c.now().Add(ttl)
		c.ll.MoveToFront(el)
		return
	}
	if ttl <= 0 || c.max < 1 {
		return
	}
	for c.ll.Len() >= c.max {
		oldest := c.ll.Back()
		c.ll.Remove(oldest)
		delete(c.items, oldest.Value.(*entry[K, V]).key)
	}
	c.items[k] = c.ll.PushFront(&entry[K, V]{key: k, value: v, expires: c.now().Add(ttl)})
}

// Remove drops k.
func (c *LRU[K, V]) Remove(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.ll.Remove(el)
		delete(c.items, k)
	}
}

// Len returns the number of entries held, expired ones not yet dropped included.
func (c *LRU[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
