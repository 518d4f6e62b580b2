package jobs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

// hang is a call that answers only when its context ends.
func hang(ctx context.Context) ([]byte, error) {
	<-ctx.Done()
	return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Err: ctx.Err()}
}

func quick(d time.Duration) func(context.Context) ([]byte, error) {
	return func(context.Context) ([]byte, error) {
		time.Sleep(d)
		return []byte(`1`), nil
	}
}

// TestLaneCutsByLatency: before minCalls are seen, a call may run to the
// timeout; after, a call is cut at cutFactor times the back end's p99, never
// below the floor, as a slow transient failure. Another back end's calls
// keep their own latency.
func TestLaneCutsByLatency(t *testing.T) {
	l := newLanes(10, 50*time.Millisecond, time.Minute)
	if usual, cut := l.limits("wh"); usual != 50*time.Millisecond || cut != time.Minute {
		t.Errorf("before any call: usual %s, cut %s; want the floor and the timeout", usual, cut)
	}
	for range minCalls {
		// The calls' durations as the worker learns them (a measured
		// sleep would be as long as the machine's load makes it).
		l.succeeded("wh", 20*time.Millisecond, time.Now())
	}
	usual, cut := l.limits("wh")
	if usual != 20*time.Millisecond || cut != cutFactor*usual {
		t.Errorf("after %d calls of 20ms: usual %s, cut %s", minCalls, usual, cut)
	}
	start := time.Now()
	_, _, err := l.run(context.Background(), "wh", hang)
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) || pe.Outcome != dashcache.OutcomeTransient || !pe.Slow || !errors.Is(err, errCut) {
		t.Errorf("a hanging call: %v; want a slow transient cut", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("a hanging call was cut after %s, want about %s", took, cut)
	}
	if _, cut := l.limits("cube"); cut != time.Minute {
		t.Errorf("another back end's cut %s, want the timeout: its calls were not seen", cut)
	}
}

// TestSlowLane: with 4 slots, 2 calls may run past their usual latency; a
// third that does is cut at once, while a call that is not slow still runs.
// A failure that comes after the usual latency is slow; one before is not.
func TestSlowLane(t *testing.T) {
	l := newLanes(4, 50*time.Millisecond, time.Minute)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			_, _, err := l.run(ctx, "wh", hang)
			errs <- err
		})
	}
	first := <-errs // the third slow call: the lane is full
	if !errors.Is(first, errLaneFull) {
		t.Errorf("the third slow call: %v; want cut, the lane full", first)
	}
	if _, _, err := l.run(context.Background(), "wh", quick(time.Millisecond)); err != nil {
		t.Errorf("a quick call while the lane is full: %v", err)
	}
	stop()
	wg.Wait()
	for range 2 {
		var pe *dashcache.ProviderError
		if err := <-errs; !errors.As(err, &pe) || !pe.Slow || errors.Is(err, errLaneFull) {
			t.Errorf("a call of the lane, ended by its caller: %v; want a slow failure, not cut", err)
		}
	}
	if l.slow != 0 {
		t.Errorf("%d places of the lane still held", l.slow)
	}
	fast := func(context.Context) ([]byte, error) {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Err: errors.New("connection refused")}
	}
	var pe *dashcache.ProviderError
	if _, _, err := l.run(context.Background(), "wh", fast); !errors.As(err, &pe) || pe.Slow {
		t.Errorf("a failure at once: %v; want it not slow", err)
	}
}

// TestPatientCall: a patient call (a probe, a last attempt) is not cut for
// its back end's latency: it runs to the timeout, so that a back end that
// got slower is answered, and learned again.
func TestPatientCall(t *testing.T) {
	l := newLanes(10, 50*time.Millisecond, 500*time.Millisecond)
	for range minCalls {
		_, took, _ := l.run(context.Background(), "wh", quick(10*time.Millisecond))
		l.succeeded("wh", took, time.Now())
	}
	if _, took, err := l.run(context.Background(), "wh", hang); !errors.Is(err, errCut) || took > 300*time.Millisecond {
		t.Errorf("an impatient hanging call: %v after %s; want cut at the floor", err, took)
	}
	data, took, err := l.run(dashcache.Patient(context.Background()), "wh", quick(200*time.Millisecond))
	if err != nil || string(data) != "1" {
		t.Errorf("a patient call of 200ms: %q, %v after %s; want its answer", data, err, took)
	}
}
