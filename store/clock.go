package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// clockSync is how often a Clock measures its offset to Redis again.
const clockSync = time.Minute

// Clock tells the time of the Redis server, read on this host: the local
// time plus the offset to Redis's TIME, measured at Start and then every
// minute. Every process that stamps entries and judges their freshness by it
// agrees, however far the hosts' own clocks are apart. It is safe for
// concurrent use.
type Clock struct {
	rdb    redis.UniversalClient
	local  func() time.Time
	offset atomic.Int64 // nanoseconds

	startOnce, stopOnce sync.Once
	stop, done          chan struct{}
}

// NewClock returns a Clock on rdb over local (nil: time.Now). Until Start it
// tells the local time.
func NewClock(rdb redis.UniversalClient, local func() time.Time) *Clock {
	if local == nil {
		local = time.Now
	}
	return &Clock{rdb: rdb, local: local, stop: make(chan struct{}), done: make(chan struct{})}
}

// Now returns the Redis server's time.
func (c *Clock) Now() time.Time {
	return c.local().Add(time.Duration(c.offset.Load()))
}

// Start measures the offset (an error if Redis does not answer) and keeps
// measuring it in the background until Shutdown; a failed later measurement
// keeps the last offset. Calling it twice is safe.
func (c *Clock) Start(ctx context.Context) (err error) {
	c.startOnce.Do(func() {
		if err = c.sync(ctx); err != nil {
			close(c.done)
			return
		}
		go func() {
			defer close(c.done)
			t := time.NewTicker(clockSync)
			defer t.Stop()
			for {
				select {
				case <-c.stop:
					return
				case <-t.C:
					sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					_ = c.sync(sctx)
					cancel()
				}
			}
		}()
	})
	return err
}

// Shutdown stops the measurements. Calling it twice is safe.
func (c *Clock) Shutdown() {
	c.stopOnce.Do(func() { close(c.stop) })
	<-c.done
}

// clockSamples is how many round trips a measurement of the offset takes.
const clockSamples = 5

// sync measures the offset, taking Redis's TIME as read halfway through the
// round trip: of several round trips, the shortest, whose halfway point is
// the least uncertain (the first one often dials the connection, and a
// busy host may stall any one).
func (c *Clock) sync(ctx context.Context) error {
	best := time.Duration(-1)
	var offset time.Duration
	for range clockSamples {
		before := c.local()
		server, err := c.rdb.Time(ctx).Result()
		after := c.local()
		if err != nil {
			return fmt.Errorf("reading the Redis server's time: %w", err)
		}
		if rtt := after.Sub(before); best < 0 || rtt < best {
			best, offset = rtt, server.Sub(before.Add(rtt/2))
		}
	}
	c.offset.Store(int64(offset))
	return nil
}
