package guard

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
)

// blockingSource holds every query until released, and counts the queries in
// flight at once.
type blockingSource struct {
	fakeSource
	mu                sync.Mutex
	inFlight, maxSeen int
	started           chan struct{}
	release           chan struct{}
}

func newBlockingSource() *blockingSource {
	return &blockingSource{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blockingSource) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	b.mu.Lock()
	b.inFlight++
	b.maxSeen = max(b.maxSeen, b.inFlight)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}()
	b.started <- struct{}{}
	<-b.release
	return b.fakeSource.Query(ctx, k)
}

func customerKey(c string) dashcache.ReportKey {
	k := anyKey
	k.Customer = c
	return k
}

// TestGuardCustomerShare: a customer with its share of calls in flight is
// deferred, without a call; others are not; a finished call frees its slot.
func TestGuardCustomerShare(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	src := newBlockingSource()
	l := newGuarded(t, src, rdb, 100, Config{CustomerShare: 2})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := l.Query(context.Background(), anyKey); err != nil {
				t.Error(err)
			}
		})
		<-src.started
	}
	_, err := l.Query(context.Background(), anyKey)
	var d *dashcache.Deferral
	if !errors.As(err, &d) || d.Reason != dashcache.ReasonShare || d.Delay <= 0 {
		t.Errorf("a third call of a customer with a share of 2: %v, want a share deferral", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Query(context.Background(), customerKey("globex"))
		done <- err
	}()
	<-src.started // another customer's call goes out
	close(src.release)
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := l.Query(context.Background(), anyKey); err != nil {
		t.Errorf("after the calls ended: %v", err)
	}
	if src.maxSeen != 3 || src.calls.Load() != 4 {
		t.Errorf("%d in flight at most, %d calls; want 3 (2 of acme, 1 of globex) and 4", src.maxSeen, src.calls.Load())
	}
}

// TestGuardDailyBudget: past its daily budget a customer is refused
// without a call, until the next day in the zone.
func TestGuardDailyBudget(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Date(2025, 3, 1, 22, 30, 0, 0, time.UTC) // 23:30 in Berlin
	src := &fakeSource{}
	l := newGuarded(t, src, rdb, 100, Config{DailyCalls: 2, Zone: berlin, Now: func() time.Time { return now }})
	for range 2 {
		if _, err := l.Query(context.Background(), anyKey); err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Query(context.Background(), anyKey)
	var r *dashcache.Refusal
	if !errors.As(err, &r) || r.Reason != dashcache.ReasonBudget || r.RetryAfter != 30*time.Minute {
		t.Fatalf("third call of a budget of 2: %v, want a budget refusal until Berlin's midnight", err)
	}
	if _, err := l.Query(context.Background(), customerKey("globex")); err != nil {
		t.Errorf("another customer: %v", err)
	}
	now = now.Add(time.Hour) // the next day in Berlin
	if _, err := l.Query(context.Background(), anyKey); err != nil {
		t.Errorf("the next day: %v", err)
	}
	if n := src.calls.Load(); n != 4 {
		t.Errorf("%d calls, want 4", n)
	}
}

// TestGuardBreaker: platform failures of two customers open the breaker;
// calls are then deferred until the cool-down ends, when one probe goes out;
// its answer closes the breaker. A caller that gives up tells the breaker
// nothing.
func TestGuardBreaker(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	clock := newFakeClock(mr)
	down := &fakeSource{err: &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Status: 500}}
	rule := store.BreakerRule{Failures: 3, Customers: 2, Window: time.Minute, Cooldown: 10 * time.Second}
	l := newGuarded(t, down, rdb, 100, Config{Backends: map[string]Backend{"": {Breaker: rule}}})
	l.sleep = clock.sleep
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	l.Query(gone, anyKey) // says nothing about the platform
	for _, c := range []string{"acme", "globex", "acme"} {
		if _, err := l.Query(context.Background(), customerKey(c)); dashcache.Outcome(err) != dashcache.OutcomeTransient {
			t.Fatalf("got %v, want the platform's failure", err)
		}
	}
	_, err := l.Query(context.Background(), anyKey)
	var d *dashcache.Deferral
	if !errors.As(err, &d) || d.Reason != dashcache.ReasonBreaker || d.Delay <= 0 || d.Delay > rule.Cooldown {
		t.Fatalf("after 3 failures of 2 customers: %v, want a breaker deferral", err)
	}
	if n := down.calls.Load(); n != 3 {
		t.Errorf("%d calls, want 3: none while open", n)
	}
	clock.sleep(context.Background(), rule.Cooldown)
	down.err = nil // the platform is back
	if _, err := l.Query(context.Background(), anyKey); err != nil {
		t.Fatalf("the probe: %v", err)
	}
	if _, err := l.Query(context.Background(), customerKey("globex")); err != nil {
		t.Errorf("after an answered probe: %v", err)
	}
}

// TestGuardWarmingShare: while warming calls wait, readers' calls together
// get at most four fifths of the rate; without warming, all of it.
func TestGuardWarmingShare(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) // time stands still
	src := &fakeSource{}
	l := newGuarded(t, src, rdb, 20, Config{CustomerShare: 100})
	l.sleep = noWait
	reads := func() (n int) {
		for range 30 {
			if _, err := l.Query(context.Background(), anyKey); err == nil {
				n++
			}
		}
		return n
	}
	if n := reads(); n != 20 {
		t.Errorf("readers alone got %d calls of a burst of 20, want 20", n)
	}
	mr.FlushAll()
	warming := &guarded{Guard: l.Guard, src: src, warming: true}
	if _, err := warming.Query(context.Background(), anyKey); err != nil { // a warming call waits, and calls
		t.Fatal(err)
	}
	if n := reads(); n != 16 {
		t.Errorf("readers got %d calls while warming waits, want 16 (20 less a fifth)", n)
	}
	if _, err := warming.Query(context.Background(), anyKey); err != nil {
		t.Errorf("warming was starved: %v", err)
	}
}
