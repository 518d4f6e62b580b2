package provider

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

// fakeClock stands still until a Limited sleeps; then it moves miniredis's
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

func newTestLimited(t *testing.T, src Source, rdb redis.UniversalClient, rate int) *Limited {
	t.Helper()
	l, err := NewLimited(src, LimitConfig{Store: store.New(rdb), Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var anyKey = dashcache.ReportKey{Customer: "acme", From: dashcache.CivilDay(2025, 1, 1), To: dashcache.CivilDay(2025, 1, 31)}

func TestLimitedEnforcesRateAcrossProcesses(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) // time stands still
	src := &fakeSource{}
	// Two "processes": separate Limited and clients, one Redis.
	a := newTestLimited(t, src, rdb, 4)
	other := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = other.Close() })
	b := newTestLimited(t, src, other, 4)
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

func TestLimitedSpacesCalls(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	clock := newFakeClock(mr)
	src := &fakeSource{}
	l := newTestLimited(t, src, rdb, 4)
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

func TestLimitedPausesFleetAfter429(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	clock := newFakeClock(mr)

	limited := &fakeSource{err: &dashcache.ProviderError{Outcome: dashcache.OutcomeRateLimited, Status: 429, RetryAfter: 2 * time.Second}}
	a := newTestLimited(t, limited, rdb, 100)
	a.sleep = clock.sleep
	_, err := a.Query(context.Background(), anyKey)
	if dashcache.Outcome(err) != dashcache.OutcomeRateLimited {
		t.Fatalf("got %v, want the source's rate_limited error", err)
	}
	// Another process sharing the Redis waits out the pause before calling.
	src := &fakeSource{}
	b := newTestLimited(t, src, rdb, 100)
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

func TestLimitedWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	if err := store.New(rdb).PauseCalls(context.Background(), time.Hour); err != nil {
		t.Fatal(err)
	}
	src := &fakeSource{}
	l := newTestLimited(t, src, rdb, 10) // the real sleep

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

func TestLimitedCustomers(t *testing.T) {
	t.Parallel()
	mr, rdb := newRedis(t)
	mr.SetTime(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	src := &fakeSource{}
	l := newTestLimited(t, src, rdb, 1)
	l.sleep = noWait

	got, err := l.Customers(context.Background())
	if err != nil || len(got) != 1 || got[0] != "acme" {
		t.Fatalf("Customers() = %q, %v", got, err)
	}
	if _, err := l.Query(context.Background(), anyKey); !errors.Is(err, errNoWait) {
		t.Errorf("Query after Customers at rate 1: %v, want to wait for a slot", err)
	}
}

func TestLimitedRedisDown(t *testing.T) {
	t.Parallel()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	src := &fakeSource{}
	l := newTestLimited(t, src, rdb, 10)
	mr.Close()
	_, err := l.Query(context.Background(), anyKey)
	if pe := asProviderError(t, err); pe.Outcome != dashcache.OutcomeTransient {
		t.Errorf("got %v, want transient", err)
	}
	if n := src.calls.Load(); n != 0 {
		t.Errorf("source calls %d without Redis, want 0", n)
	}
}

func TestNewLimitedValidates(t *testing.T) {
	t.Parallel()
	_, rdb := newRedis(t)
	src := &fakeSource{}
	tests := []struct {
		name    string
		src     Source
		cfg     LimitConfig
		wantErr string
	}{
		{"ok", src, LimitConfig{Store: store.New(rdb)}, ""},
		{"no source", nil, LimitConfig{Store: store.New(rdb)}, "source"},
		{"no store", src, LimitConfig{}, "Store"},
		{"negative rate", src, LimitConfig{Store: store.New(rdb), Rate: -1}, "Rate"},
	}
	for _, tt := range tests {
		l, err := NewLimited(tt.src, tt.cfg)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			} else if l.rate.Rate != DefaultRate || l.rate.Burst != DefaultRate {
				t.Errorf("%s: rate %+v, want the default %d and a burst as large", tt.name, l.rate, DefaultRate)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.wantErr)
		}
	}
}
