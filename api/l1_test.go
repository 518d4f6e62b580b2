package api

import (
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
)

// TestL1ReadBeforeDropCannotPut: a read that fetched the entry before a fill
// notification dropped it cannot put the old bytes back; a read after can;
// nothing is held while the subscription is down, nor from reads that began
// before it came back.
func TestL1ReadBeforeDropCannotPut(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	k, _ := dashcache.ParseCanonical("acme|2025-01-01|2025-01-31")
	e := newReport(k, store.Entry{ComputedAt: now, FreshUntil: now.Add(time.Hour), Body: "{}"})
	c := newL1(1 << 20)
	c.setUp(true)

	before := c.begin()
	c.drop(k.String()) // the fill notification, while the read is in flight
	c.put(e, 10, before)
	if c.get(k, now) != nil {
		t.Fatal("a read that began before the drop put its entry")
	}
	c.put(e, 10, c.begin())
	if c.get(k, now) == nil {
		t.Fatal("a read after the drop did not put")
	}
	if c.get(k, now.Add(time.Hour+dashcache.StaleFor)) != nil {
		t.Error("served past the time Redis would have expired it")
	}

	c.put(e, 10, c.begin())
	inFlight := c.begin()
	c.setUp(false)
	if c.get(k, now) != nil {
		t.Error("held an entry while the subscription was down")
	}
	c.put(e, 10, c.begin())
	c.setUp(true)
	c.put(e, 10, inFlight)
	if c.get(k, now) != nil {
		t.Error("held an entry read while the subscription was down, or before")
	}
}

// TestL1KeptWhileDown: when the subscription goes down L1 empties, keeping
// aside what it held (kept, served stale to reads that find Redis failing),
// until a read from Redis succeeds with the subscription back; Redis is
// taken for unreachable once a read fails while the subscription is down.
func TestL1KeptWhileDown(t *testing.T) {
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	k, _ := dashcache.ParseCanonical("acme|2025-01-01|2025-01-31")
	e := newReport(k, store.Entry{ComputedAt: now, FreshUntil: now.Add(time.Hour), Body: "{}"})
	c := newL1(1 << 20)
	c.setUp(true)
	c.put(e, 10, c.begin())
	c.failed()
	if c.redisDown() || c.kept(k, now) != nil {
		t.Fatal("Redis taken for down, or a report kept, while the subscription is up")
	}

	c.setUp(false)
	if c.get(k, now) != nil || c.kept(k, now) != e {
		t.Fatal("while the subscription is down: served as a hit, or not kept")
	}
	if c.kept(k, now.Add(time.Hour+dashcache.StaleFor)) != nil {
		t.Error("kept past the time Redis would have expired it")
	}
	if c.redisDown() {
		t.Error("Redis taken for down before a read failed")
	}
	c.failed()
	c.answered()
	if !c.redisDown() || c.kept(k, now) != e {
		t.Fatal("a read failed with the subscription down: Redis not taken for down, or the report not kept")
	}

	c.setUp(true)
	if c.redisDown() || c.get(k, now) != nil || c.kept(k, now) != e {
		t.Error("the subscription back: Redis still taken for down, the kept report served as a hit, or not kept until Redis answers")
	}
	c.answered()
	if c.kept(k, now) != nil {
		t.Error("still kept once Redis answered with the subscription back")
	}
}
