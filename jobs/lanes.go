package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dashcache/dashcache"
)

// Defaults of the slow lane (HandlerConfig).
const (
	// DefaultSlowFloor is the least a call may run before it is cut for
	// its back end's latency, and the usual latency of a back end before
	// enough of its calls are seen.
	DefaultSlowFloor = 2 * time.Second
	// slowLaneDelay is how long a call cut for a full slow lane waits
	// before it runs again (a deferral: no retry is used).
	slowLaneDelay = time.Second
	// latencyCalls is how many of a back end's latest successful calls
	// its latency is taken over; minCalls how many must be seen before
	// calls are cut by it.
	latencyCalls, minCalls = 200, 20
	// cutFactor times a back end's p99 is how long a call may run.
	cutFactor = 3
	// latencyReportEvery is how often a worker reports a back end's
	// latency to the fleet (store.GuardState.ReportLatency).
	latencyReportEvery = 10 * time.Second
)

// Why a call was cut.
var (
	errCut      = errors.New("ran past its back end's usual latency")
	errLaneFull = dashcache.ErrSlowLaneFull
)

// lanes is a worker's view of its back ends' latency, and its slow lane: a
// call that runs past its back end's usual latency (its p99; the floor
// until minCalls are seen) takes a place in the slow lane, which has half
// the worker's slots, or is cut if the lane is full, so that calls that
// are not slow always have slots; a call past cutFactor times the p99
// (never below the floor, never above the call timeout) is cut. A cut is a
// transient failure, retried; it is slow (dashcache.ProviderError.Slow).
type lanes struct {
	floor, timeout time.Duration
	places         int // of the slow lane

	mu      sync.Mutex
	slow    int                 // calls in the slow lane
	backend map[string]*latency // what each back end's successful calls took
}

// latency is what a worker has seen of a back end's successful calls.
type latency struct {
	seen     []time.Duration // the latest, oldest first
	p50, p99 time.Duration   // of seen, once minCalls are
	reported time.Time       // when the fleet last heard of them
}

// newLanes returns the lanes of a worker of slots slots (the slow lane has
// half of them, and one at least).
func newLanes(slots int, floor, timeout time.Duration) *lanes {
	return &lanes{floor: floor, timeout: timeout, places: max(slots/2, 1), backend: map[string]*latency{}}
}

// limits returns how long a call of backend runs before it is slow, and
// before it is cut.
func (l *lanes) limits(backend string) (usual, cut time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.backend[backend]
	if b == nil || b.p99 == 0 {
		return min(l.floor, l.timeout), l.timeout // until enough are seen, the timeout holds
	}
	return b.p99, min(max(cutFactor*b.p99, l.floor), l.timeout)
}

// succeeded records a successful call of backend that took d. report is
// set, with the latency to report, when the fleet should hear of it.
func (l *lanes) succeeded(backend string, d time.Duration, now time.Time) (report bool, p50, p99 time.Duration, calls int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.backend[backend]
	if b == nil {
		b = &latency{}
		l.backend[backend] = b
	}
	b.seen = append(b.seen, d)
	if len(b.seen) > latencyCalls {
		b.seen = b.seen[1:]
	}
	if len(b.seen) < minCalls {
		return false, 0, 0, 0
	}
	sorted := slices.Sorted(slices.Values(b.seen))
	b.p50, b.p99 = sorted[len(sorted)/2], max(sorted[len(sorted)*99/100], time.Millisecond)
	if now.Sub(b.reported) < latencyReportEvery {
		return false, 0, 0, 0
	}
	b.reported = now
	return true, b.p50, b.p99, len(b.seen)
}

// run makes query, a call of backend, under the lane's limits: it cuts the
// call (its context ends) when it runs too long, and returns its outcome,
// with a cut or a slow failure marked so. A patient call
// (dashcache.IsPatient) may run to the timeout, in the lane.
func (l *lanes) run(ctx context.Context, backend string, query func(context.Context) ([]byte, error)) ([]byte, time.Duration, error) {
	usual, cutAfter := l.limits(backend)
	if dashcache.IsPatient(ctx) {
		cutAfter = l.timeout
	}
	ctx, cut := context.WithCancelCause(ctx)
	defer cut(nil)
	var mu sync.Mutex
	inLane, done := false, false
	slowTimer := time.AfterFunc(usual, func() {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return
		}
		if inLane = l.enter(); !inLane {
			cut(errLaneFull)
		}
	})
	cutTimer := time.AfterFunc(cutAfter, func() { cut(errCut) })
	start := time.Now()
	data, err := query(ctx)
	took := time.Since(start)
	slowTimer.Stop()
	cutTimer.Stop()
	mu.Lock()
	done = true
	if inLane {
		l.leave()
	}
	mu.Unlock()

	cause := context.Cause(ctx)
	var pe *dashcache.ProviderError
	switch {
	case err == nil:
		return data, took, nil
	case errors.Is(cause, errCut), errors.Is(cause, errLaneFull):
		return nil, took, &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Slow: true,
			Err: fmt.Errorf("cut after %s: the call %w (usual %s, cut at %s)", took.Round(time.Millisecond), cause, usual, cutAfter)}
	case errors.As(err, &pe) && pe.Outcome == dashcache.OutcomeTransient && took >= usual:
		slow := *pe
		slow.Slow = true
		return nil, took, &slow
	}
	return nil, took, err
}

// enter takes a place in the slow lane, if one is free.
func (l *lanes) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.slow >= l.places {
		return false
	}
	l.slow++
	return true
}

func (l *lanes) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slow--
}
