package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// TestClockTellsRedisTime: hosts whose clocks are 10 minutes apart agree on
// the time through a Clock.
func TestClockTellsRedisTime(t *testing.T) {
	m := miniredis.RunT(t)
	redisNow := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m.SetTime(redisNow)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	for _, skew := range []time.Duration{-10 * time.Minute, 0, 3 * time.Hour} {
		local := time.Now().Add(skew)
		c := store.NewClock(rdb, func() time.Time { return local })
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := c.Now(); got.Sub(redisNow).Abs() > time.Millisecond {
			t.Errorf("a host %s off tells %s, want Redis's %s", skew, got, redisNow)
		}
		c.Shutdown()
		c.Shutdown() // twice is safe
	}
}

// TestClockTakesShortestRoundTrip: a measurement's first round trip is slow
// (it dials, say): the offset comes from the shortest one, whose halfway
// point is the least uncertain.
func TestClockTakesShortestRoundTrip(t *testing.T) {
	m := miniredis.RunT(t)
	redisNow := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m.SetTime(redisNow)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	// The local readings around each TIME: 0 and 100 ms, then 1 ms apart.
	t0 := time.Now()
	readings := []time.Duration{0, 100 * time.Millisecond}
	for i := range 20 {
		readings = append(readings, 100*time.Millisecond+time.Duration(i)*time.Millisecond)
	}
	var mu sync.Mutex
	n := 0
	local := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		n++
		return t0.Add(readings[n-1])
	}
	c := store.NewClock(rdb, local)
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	// The second round trip, 100 to 101 ms, read Redis's time at 100.5 ms.
	mu.Lock()
	readings[n] = 100*time.Millisecond + 500*time.Microsecond
	mu.Unlock()
	if got := c.Now(); got.Sub(redisNow).Abs() > 10*time.Microsecond {
		t.Errorf("Now %s off Redis's time; want the offset of the shortest round trip", got.Sub(redisNow))
	}
}
