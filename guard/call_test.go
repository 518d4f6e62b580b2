package guard

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// fakeSource counts calls and answers with err.
type fakeSource struct {
	calls atomic.Int64
	err   error
}

func (f *fakeSource) Query(context.Context, dashcache.ReportKey) ([]byte, error) {
	f.calls.Add(1)
	if f.err != nil {
		return nil, f.err
	}
	return []byte(`{}`), nil
}

func (f *fakeSource) Customers(context.Context) ([]string, error) {
	f.calls.Add(1)
	return []string{"acme"}, f.err
}

// fakeClock stands still until a Guard sleeps; then it moves miniredis's
// clock (TIME, used by the rate limit script) and its TTLs forward instead.
type fakeClock struct {
	mr    *miniredis.Miniredis
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

func newFakeClock(mr *miniredis.Miniredis) *fakeClock {
	c := &fakeClock{mr: mr, now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	mr.SetTime(c.now)
	return c
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
	c.mr.SetTime(c.now)
	c.mr.FastForward(d)
	return nil
}

func (c *fakeClock) elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept
}

// errNoWait is what a sleep that refuses to wait returns, like an ended ctx.
var errNoWait = errors.New("no waiting in this test")

func noWait(context.Context, time.Duration) error { return errNoWait }

func newRedis(t *testing.T) (*miniredis.Miniredis, redis.UniversalClient) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return mr, rdb
}

// source is a BI client as the guard's tests see it.
type source interface {
	Query(context.Context, dashcache.ReportKey) ([]byte, error)
	Customers(context.Context) ([]string, error)
}

// guarded is a Guard in front of src, called as a worker calls it.
type guarded struct {
	*Guard
	src     source
	warming bool // its calls are warming's
}

func (l *guarded) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	return l.Call(ctx, k, l.warming, func(ctx context.Context) ([]byte, error) { return l.src.Query(ctx, k) })
}

func (l *guarded) Customers(ctx context.Context) (customers []string, err error) {
	err = l.Do(ctx, "", func(ctx context.Context) error {
		customers, err = l.src.Customers(ctx)
		return err
	})
	return customers, err
}

// newGuarded returns a Guard of cfg, on rdb, in front of src, with the one
// back end "" at rate.
func newGuarded(t *testing.T, src source, rdb redis.UniversalClient, rate int, cfg Config) *guarded {
	t.Helper()
	cfg.State = store.New(rdb).Guards
	b := cfg.Backends[""]
	b.Rate = rate
	cfg.Backends = map[string]Backend{"": b}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &guarded{Guard: g, src: src}
}

func newTestGuarded(t *testing.T, src source, rdb redis.UniversalClient, rate int) *guarded {
	t.Helper()
	return newGuarded(t, src, rdb, rate, Config{})
}

var anyKey = dashcache.ReportKey{Customer: "acme", From: dashcache.CivilDay(2025, 1, 1), To: dashcache.CivilDay(2025, 1, 31)}

func TestGuardEnforcesRateAcrossProcesses(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) // time stands still
	src := &fakeSource{}
	// Two "processes": separate Guards and clients, one Redis.
	a := newTestGuarded(t, src, rdb, 4)
	other := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = other.Close() })
	b := newTestGuarded(t, src, other, 4)
	a.sleep, b.sleep = noWait, noWait

	var ok, refused int
	for i := range 10 {
		l := a
		if i%2 == 1 {
			l = b
		}
		_, err := l.Query(context.Background(), anyKey)
		switch {
		case err == nil:
			ok++
		case dashcache.Outcome(err) == dashcache.OutcomeTransient && errors.Is(err, errNoWait):
			refused++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 4 || refused != 6 || src.calls.Load() != 4 {
		t.Errorf("ok %d, refused %d, source calls %d; want 4, 6, 4", ok, refused, src.calls.Load())
	}
}

func TestGuardSpacesCalls(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	clock := newFakeClock(mr)
	src := &fakeSource{}
	l := newTestGuarded(t, src, rdb, 4)
	l.sleep = clock.sleep

	for range 12 {
		if _, err := l.Query(context.Background(), anyKey); err != nil {
			t.Fatal(err)
		}
	}
	// Bursts of 4, each a rate window (1.1 s) after the last: the 12th at
	// 2.2 s.
	if got, want := clock.elapsed(), 2*store.RateWindow; got != want {
		t.Errorf("12 calls at 4/s took %s of (fake) time, want %s", got, want)
	}
	if n := src.calls.Load(); n != 12 {
		t.Errorf("source calls %d, want 12", n)
	}
}

func TestGuardPausesFleetAfter429(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	clock := newFakeClock(mr)

	limited := &fakeSource{err: &dashcache.ProviderError{Outcome: dashcache.OutcomeRateLimited, Status: 429, RetryAfter: 2 * time.Second}}
	a := newTestGuarded(t, limited, rdb, 100)
	a.sleep = clock.sleep
	_, err := a.Query(context.Background(), anyKey)
	if dashcache.Outcome(err) != dashcache.OutcomeRateLimited {
		t.Fatalf("got %v, want the source's rate_limited error", err)
	}
	// Another process sharing the Redis waits out the pause before calling.
	src := &fakeSource{}
	b := newTestGuarded(t, src, rdb, 100)
	b.sleep = clock.sleep
	if _, err := b.Query(context.Background(), anyKey); err != nil {
		t.Fatal(err)
	}
	if got := clock.elapsed(); got != 2*time.Second {
		t.Errorf("waited %s, want the 2s pause", got)
	}
	if n := src.calls.Load(); n != 1 {
		t.Errorf("source calls %d, want 1", n)
	}
}

func TestGuardWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	if err := store.New(rdb).Guards.PauseCalls(context.Background(), "", time.Hour); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{}
	l := newTestGuarded(t, src, rdb, 10) // the real sleep

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := l.Query(ctx, anyKey)
	pe := asProviderError(t, err)
	if pe.Outcome != dashcache.OutcomeTransient || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want transient wrapping context.DeadlineExceeded", err)
	}
	if n := src.calls.Load(); n != 0 {
		t.Errorf("source calls %d during a pause, want 0", n)
	}
}

func TestGuardCustomers(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	src := &fakeSource{}
	l := newTestGuarded(t, src, rdb, 1)
	l.sleep = noWait

	got, err := l.Customers(context.Background())
	if err != nil || len(got) != 1 || got[0] != "acme" {
		t.Fatalf("Customers() = %q, %v", got, err)
	}
	if _, err := l.Query(context.Background(), anyKey); !errors.Is(err, errNoWait) {
		t.Errorf("Query after Customers at rate 1: %v, want to wait for a slot", err)
	}
}

func TestGuardRedisDown(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	src := &fakeSource{}
	l := newTestGuarded(t, src, rdb, 10)
	mr.Close()
	_, err := l.Query(context.Background(), anyKey)
	if pe := asProviderError(t, err); pe.Outcome != dashcache.OutcomeTransient {
		t.Errorf("got %v, want transient", err)
	}
	if n := src.calls.Load(); n != 0 {
		t.Errorf("source calls %d without Redis, want 0", n)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	state := store.New(rdb).Guards
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{State: state}, ""},
		{"no state", Config{}, "State"},
		{"negative rate", Config{State: state, Backends: map[string]Backend{"": {Rate: -1}}}, "Rate"},
		{"negative share", Config{State: state, CustomerShare: -1}, "CustomerShare"},
		{"no default back end", Config{State: state, Backends: map[string]Backend{"warehouse": {}}}, `back end ""`},
		{"a name no hash tag may hold", Config{State: state, Backends: map[string]Backend{"": {}, "ware}house": {}}}, "ware}house"},
	}
	for _, tt := range tests {
		g, err := New(tt.cfg)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if b := g.backends[""]; b.rate.Rate != DefaultRate || b.rate.Burst != DefaultRate || g.cfg.CustomerShare != (DefaultRate+1)/2 {
				t.Errorf("%s: rate %+v, share %d; want the default %d, a burst as large, and half of it", tt.name, b.rate, g.cfg.CustomerShare, DefaultRate)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}

// TestUnknownBackend: a call to a back end the guard does not know is an
// error, and calls nothing.
func TestUnknownBackend(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	l := newTestGuarded(t, &fakeSource{}, rdb, 10)
	called := false
	if err := l.Do(context.Background(), "warehouse", func(context.Context) error { called = true; return nil }); err == nil || called {
		t.Errorf("Do(warehouse) = %v, called %v; want an error naming it and no call", err, called)
	}
}

func asProviderError(t *testing.T, err error) *dashcache.ProviderError {
	t.Helper()
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *dashcache.ProviderError", err, err)
	}
	return pe
}

// TestBackendsApart: a back end's 429 pause and breaker hold its calls only;
// another back end's go out.
func TestBackendsApart(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	state := store.New(rdb).Guards
	g, err := New(Config{State: state, Backends: map[string]Backend{"": {}, "warehouse": {Rate: 20}}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Rate("warehouse") != 20 || g.Rate("") != DefaultRate || g.Rate("nowhere") != 0 {
		t.Errorf("Rate: warehouse %d, default %d, unknown %d; want 20, %d, 0", g.Rate("warehouse"), g.Rate(""), g.Rate("nowhere"), DefaultRate)
	}
	g.sleep = noWait
	ctx := context.Background()
	rateLimited := &dashcache.ProviderError{Outcome: dashcache.OutcomeRateLimited, Status: 429, RetryAfter: time.Hour}
	if err := g.Do(ctx, "warehouse", func(context.Context) error { return rateLimited }); err != rateLimited {
		t.Fatalf("the 429: %v", err)
	}
	rule := store.BreakerRule{Failures: 1, Customers: 1, Window: time.Minute, Cooldown: time.Hour}
	if _, err := state.BreakerRecord(ctx, "warehouse", rule, "acme", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if left, _ := state.BreakerOpen(ctx, "warehouse"); left <= 0 {
		t.Fatalf("the warehouse's breaker is not open")
	}
	if err := g.Do(ctx, "warehouse", func(context.Context) error { return nil }); !errors.Is(err, errNoWait) {
		t.Errorf("a call to the paused warehouse: %v, want to wait", err)
	}
	if err := g.Do(ctx, "", func(context.Context) error { return nil }); err != nil {
		t.Errorf("a call to the other back end: %v", err)
	}
	if _, err := g.Call(ctx, anyKey, false, func(context.Context) ([]byte, error) { return []byte(`{}`), nil }); err != nil {
		t.Errorf("a report of the other back end: %v", err)
	}
	if err := g.Admit(ctx, anyKey); err != nil {
		t.Errorf("admitting a report of the other back end: %v", err)
	}
}

// TestBreakerGauge: dashcache_breaker_open says, per back end, whether its
// breaker is open; the default back end's has an empty label.
func TestBreakerGauge(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	state := store.New(rdb).Guards
	reg := prometheus.NewRegistry()
	if _, err := New(Config{State: state, Backends: map[string]Backend{"": {}, "warehouse": {}}, Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	rule := store.BreakerRule{Failures: 1, Customers: 1, Window: time.Minute, Cooldown: time.Hour}
	if _, err := state.BreakerRecord(context.Background(), "warehouse", rule, "acme", true, time.Time{}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP dashcache_breaker_open 1 while a back end's breaker keeps every worker from calling it, else 0 (read from Redis at each scrape; backend is empty for the default report's).
# TYPE dashcache_breaker_open gauge
dashcache_breaker_open{backend=""} 0
dashcache_breaker_open{backend="warehouse"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dashcache_breaker_open"); err != nil {
		t.Error(err)
	}
}

// TestSlowLaneCutsNotCounted: calls a worker cut for its slow lane say
// nothing of the platform: however many, of however many customers, the
// breaker stays closed.
func TestSlowLaneCutsNotCounted(t *testing.T) {
	_, rdb := newRedis(t)
	state := store.New(rdb).Guards
	g, err := New(Config{State: state, Backends: map[string]Backend{"": {Rate: 1000, Breaker: store.BreakerRule{Failures: 2, Customers: 2}}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cut := &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Slow: true, Err: dashcache.ErrSlowLaneFull}
	for _, c := range []string{"acme", "globex", "initech", "umbrella"} {
		k := anyKey
		k.Customer = c
		if _, err := g.Call(ctx, k, false, func(context.Context) ([]byte, error) { return nil, cut }); !errors.Is(err, dashcache.ErrSlowLaneFull) {
			t.Fatalf("a cut call: %v", err)
		}
	}
	if left, err := state.BreakerOpen(ctx, ""); err != nil || left > 0 {
		t.Errorf("the breaker is open for %s (%v) after cuts of our own", left, err)
	}
}
