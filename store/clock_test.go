package store_test

import (
	"context"
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
