package api

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dashcache/dashcache"
)

// DefaultL1Bytes is the default bound of a process's L1 (Config.L1Bytes).
const DefaultL1Bytes = 64 << 20

// l1Overhead is what an L1 entry costs beyond its bytes in Redis: the map
// and list cells, the parsed header.
const l1Overhead = 256

// maxShare is how small a part of L1 one report may take at most: 1/maxShare.
const maxShare = 8

type l1Item struct {
	rep  *report
	cost int64
	used atomic.Bool // read since eviction last passed it
}

// l1 holds recently read reports in this process, bounded in bytes; past the
// bound, a report not read since eviction last passed it goes first (CLOCK:
// reads only take the read lock). It is kept exact by the fill notifications: a
// fill drops the report before its readers are woken, and a read that began
// before the drop cannot put the old entry back (it carries the sequence
// number it began at; drops leave tombstones with theirs). An answer
// assembled from a partitioned report's months is dropped with any of them.
// While the subscription is down a notification may be lost, so L1 is empty
// and takes no entries until it is back. What it held when the subscription
// went down is kept aside, never served as a hit: only stale, to reads that
// find Redis failing (stale-if-error, RFC 5861), until a read from Redis
// succeeds with the subscription back. It is safe for concurrent use.
type l1 struct {
	max int64 // 0: no L1

	mu    sync.RWMutex
	up    bool // the subscription is up: L1 may serve and take entries
	size  int64
	items map[dashcache.ReportKey]*list.Element
	lru   list.List // of *l1Item, most recently put or passed over first
	seq   uint64    // counts drops
	tombs map[dashcache.ReportKey]uint64
	floor uint64 // reads that began before it may not put
	// assembled holds, by month, the answers assembled from it (of a
	// partitioned report): a fill of the month drops them.
	assembled map[dashcache.ReportKey]map[*list.Element]struct{}
	// aside holds the reports held when the subscription last went down
	// (at most max bytes more, until a read from Redis succeeds with the
	// subscription back), for kept; asideSet says it is not empty.
	aside    map[dashcache.ReportKey]*report
	asideSet atomic.Bool
	// failing: while the subscription is down, a read found Redis failing
	// too; until the subscription is back, reads are not sent to Redis.
	failing bool
}

// maxTombs bounds the tombstones: past it they are forgotten, and every read
// in flight is refused its put instead.
const maxTombs = 10000

func newL1(max int64) *l1 {
	return &l1{max: max, items: map[dashcache.ReportKey]*list.Element{}, tombs: map[dashcache.ReportKey]uint64{},
		assembled: map[dashcache.ReportKey]map[*list.Element]struct{}{}}
}

// get returns the report of k, if held and not past the time Redis would
// have expired it; else nil.
func (c *l1) get(k dashcache.ReportKey, now time.Time) *report {
	if c.max <= 0 {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	el := c.items[k]
	if el == nil {
		return nil
	}
	it := el.Value.(*l1Item)
	if !servable(it.rep, now) {
		return nil // the next put of it replaces it
	}
	it.used.Store(true)
	return it.rep
}

// servable reports whether rep is within the time Redis keeps it at now.
func servable(rep *report, now time.Time) bool {
	return now.Before(rep.FreshUntil.Add(dashcache.StaleFor))
}

// kept returns the report of k that L1 held when the subscription last went
// down, if it is not past the time Redis would have expired it; else nil.
// It is for a read that found Redis failing: a fill of it may have been
// missed, so it is served stale, never as a hit.
func (c *l1) kept(k dashcache.ReportKey, now time.Time) *report {
	if !c.asideSet.Load() {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if rep := c.aside[k]; rep != nil && servable(rep, now) {
		return rep
	}
	return nil
}

// answered is told that a read from Redis succeeded: once the subscription
// is back, the reports kept from before are forgotten.
func (c *l1) answered() {
	if !c.asideSet.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up {
		c.aside = nil
		c.asideSet.Store(false)
	}
}

// failed is told that a read from Redis failed: while the subscription is
// down, Redis is then taken for unreachable (redisDown) until it is back.
func (c *l1) failed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing = !c.up
}

// redisDown reports whether Redis is taken for unreachable: a read failed
// while the subscription is down, and it has not come back since.
func (c *l1) redisDown() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.failing
}

// begin returns the sequence number a read that may put begins at.
func (c *l1) begin() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.seq
}

// put holds rep (raw bytes long in Redis), read by a read that began at
// seq, unless the report (or, for an assembled answer, one of its months)
// was dropped since.
func (c *l1) put(rep *report, raw int, seq uint64) {
	cost := int64(raw) + l1Overhead
	if c.max <= 0 || cost > c.max/maxShare {
		return
	}
	key := rep.key
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.up || seq < c.floor || c.tombs[key] > seq {
		return
	}
	for _, m := range rep.months {
		if c.tombs[m.key] > seq {
			return
		}
	}
	if el := c.items[key]; el != nil {
		c.remove(el)
	}
	el := c.lru.PushFront(&l1Item{rep: rep, cost: cost})
	c.items[key] = el
	for _, m := range rep.months {
		if c.assembled[m.key] == nil {
			c.assembled[m.key] = map[*list.Element]struct{}{}
		}
		c.assembled[m.key][el] = struct{}{}
	}
	c.size += cost
	c.evict()
}

// charge adds n bytes to the cost of rep (its decompressed body, to keep),
// if L1 holds it and it stays within what one report may cost; else it
// returns false.
func (c *l1) charge(rep *report, n int) bool {
	if c.max <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.items[rep.key]
	if el == nil {
		return false
	}
	it := el.Value.(*l1Item)
	if it.rep != rep || it.cost+int64(n) > c.max/maxShare {
		return false
	}
	it.cost += int64(n)
	c.size += int64(n)
	c.evict()
	return true
}

// evict removes reports until L1 is within its bound.
func (c *l1) evict() {
	for c.size > c.max {
		el := c.lru.Back()
		if el.Value.(*l1Item).used.Swap(false) {
			c.lru.MoveToFront(el) // read since: a second chance
			continue
		}
		c.remove(el)
	}
}

// drop forgets the report of a fill notification, and the answers
// assembled from it.
func (c *l1) drop(canonical string) {
	if c.max <= 0 {
		return
	}
	k, err := dashcache.ParseCanonical(canonical)
	if err != nil {
		return // not a report of ours
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	if el := c.items[k]; el != nil {
		c.remove(el)
	}
	for el := range c.assembled[k] {
		c.remove(el)
	}
	if len(c.tombs) >= maxTombs {
		clear(c.tombs)
		c.floor = c.seq
	}
	c.tombs[k] = c.seq
}

// setUp is told when the subscription goes down (a notification may be
// lost: L1 empties, keeping aside what it held, and takes no entries) and
// when it is up again.
func (c *l1) setUp(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.up = up
	c.failing = false
	c.seq++
	c.floor = c.seq // reads in flight may hold entries read before
	clear(c.tombs)
	clear(c.assembled)
	if len(c.items) == 0 {
		return // a second change before any put: what is aside stays
	}
	c.aside = make(map[dashcache.ReportKey]*report, len(c.items))
	for k, el := range c.items {
		c.aside[k] = el.Value.(*l1Item).rep
	}
	c.asideSet.Store(true)
	clear(c.items)
	c.lru.Init()
	c.size = 0
}

// isUp reports whether the subscription is up (setUp).
func (c *l1) isUp() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.up
}

func (c *l1) remove(el *list.Element) {
	it := c.lru.Remove(el).(*l1Item)
	delete(c.items, it.rep.key)
	for _, m := range it.rep.months {
		delete(c.assembled[m.key], el)
		if len(c.assembled[m.key]) == 0 {
			delete(c.assembled, m.key)
		}
	}
	c.size -= it.cost
}
