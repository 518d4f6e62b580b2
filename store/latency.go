package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Latency is what a worker has seen of a back end's successful calls.
type Latency struct {
	P50, P99 time.Duration
	// Calls is how many successful calls they are taken over.
	Calls int
	// At is when the worker reported them.
	At time.Time
}

// latencyKept is how long a report of a back end's latency counts.
const latencyKept = time.Hour

// ReportLatency records l as the back end's latency, for the fleet to read
// (the latest report wins): for one-shot commands that size a warm.
func (g *GuardState) ReportLatency(ctx context.Context, backend string, l Latency) error {
	v := fmt.Sprintf("%d %d %d %d", l.P50.Milliseconds(), l.P99.Milliseconds(), l.Calls, l.At.UnixMilli())
	if err := g.rdb.Set(ctx, keysOfBackend(backend).latency, v, latencyKept).Err(); err != nil {
		return fmt.Errorf("reporting the latency of back end %q: %w", backend, err)
	}
	return nil
}

// Latency returns the back end's latency as a worker last reported it
// within latencyKept; Calls is 0 when none did.
func (g *GuardState) Latency(ctx context.Context, backend string) (Latency, error) {
	v, err := g.rdb.Get(ctx, keysOfBackend(backend).latency).Result()
	if errors.Is(err, redis.Nil) {
		return Latency{}, nil
	}
	if err != nil {
		return Latency{}, fmt.Errorf("reading the latency of back end %q: %w", backend, err)
	}
	var p50, p99, at int64
	var l Latency
	if _, err := fmt.Sscanf(v, "%d %d %d %d", &p50, &p99, &l.Calls, &at); err != nil {
		return Latency{}, nil // not ours: as if none were reported
	}
	l.P50, l.P99, l.At = time.Duration(p50)*time.Millisecond, time.Duration(p99)*time.Millisecond, time.UnixMilli(at)
	return l, nil
}
