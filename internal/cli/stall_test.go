package cli

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
)

// stallingBI is a BI platform on which the queries of customers whose name
// starts with "stalled" hang until their caller gives up, and every other
// query is answered in 200 ms (or hangs too, once all is set).
type stallingBI struct {
	*httptest.Server
	all              atomic.Bool // every query hangs
	stalled, healthy atomic.Int64
	hanging          atomic.Int64       // queries hanging now
	hung             chan time.Duration // how long each hanging query hung, until its caller gave up
}

func newStallingBI(t *testing.T) *stallingBI {
	b := &stallingBI{hung: make(chan time.Duration, 1000)}
	release := make(chan struct{}) // at the end, whatever still hangs answers
	sim := provider.NewSimulator(provider.SimConfig{MinLatency: 200 * time.Millisecond, MaxLatency: 200 * time.Millisecond})
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		customer, _, _ := strings.Cut(r.Header.Get("Idempotency-Key"), "|")
		if r.URL.Path == "/query" && (strings.HasPrefix(customer, "stalled") || b.all.Load()) {
			b.stalled.Add(1)
			b.hanging.Add(1)
			defer b.hanging.Add(-1)
			io.Copy(io.Discard, r.Body) // else net/http does not watch for the caller hanging up
			start := time.Now()
			select {
			case <-r.Context().Done():
				b.hung <- time.Since(start)
			case <-release:
			}
			return
		}
		if r.URL.Path == "/query" {
			b.healthy.Add(1)
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(b.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for the handlers
	return b
}

// TestStalls: one stalled report in each of 10 customers and 10 worker
// slots, the BI platform answering everyone else in 200 ms: a healthy
// customer's 20 reads are each served within 5 s (half the slots are kept
// for calls that are not slow, and a slow call past the lane is cut), and
// the breaker does not open (the platform answers the calls it is given).
// Then every call hangs, for every customer: the breaker opens, as before.
// Counted at the BI server.
func TestStalls(t *testing.T) {
	bi := newStallingBI(t)
	redisURL, rdb := redistest.URLClient(t)
	env := map[string]string{
		"DASHCACHE_REDIS_URL":          redisURL,
		"DASHCACHE_LISTEN":             "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":       bi.URL,
		"DASHCACHE_PROVIDER_RATE":      "100",
		"DASHCACHE_WORKER_CONCURRENCY": "10",
		"DASHCACHE_PROVIDER_TIMEOUT":   "5s", // the lane's calls end during the healthy reads: slow failures the breaker must not count
	}
	worker := startRole(t, "worker", env)
	api := startRole(t, "api", env)
	ctx := context.Background()
	guards := store.New(rdb).Guards

	for i := range 10 {
		if r := get(t, api, "stalled"+string(rune('a'+i)), "2025-01-01", "2025-01-31", "0s"); r.status != http.StatusAccepted {
			t.Fatalf("a stalled customer's read: %d %s", r.status, r.body)
		}
	}
	wait.For(t, "the 10 stalled calls to hold the 10 slots", 10*time.Second, func() bool { return bi.hanging.Load() == 10 })

	for i := range 20 {
		r := get(t, api, "healthy", day(i), day(i), "10s")
		if r.status != http.StatusOK || r.latency > 5*time.Second {
			t.Errorf("healthy read %d: %d in %s, want 200 within 5 s (%s)", i, r.status, r.latency.Round(time.Millisecond), r.body)
		}
		if left, err := guards.BreakerOpen(ctx, ""); err != nil || left > 0 {
			t.Fatalf("after healthy read %d the breaker is open for %s (%v), want closed: the platform answers", i, left, err)
		}
	}
	// The lane's calls ran to the 5 s timeout during the reads: slow
	// failures, with the platform answering others meanwhile.
	wait.For(t, "a slow failure", 10*time.Second, func() bool { return scrape(t, worker, `dashcache_provider_calls_total{outcome="transient"}`) > 0 })
	if left, err := guards.BreakerOpen(ctx, ""); err != nil || left > 0 {
		t.Errorf("the breaker: open for %s (%v), want closed: the platform answers", left, err)
	}
	if n := bi.healthy.Load(); n != 20 {
		t.Errorf("%d healthy calls at the BI server, want 20", n)
	}
	t.Logf("stalled calls started %d, healthy calls %d", bi.stalled.Load(), bi.healthy.Load())

	// Down is still down: every call hangs, for every customer.
	bi.all.Store(true)
	var readers sync.WaitGroup
	for i := range 6 {
		readers.Go(func() { get(t, api, "down"+string(rune('a'+i)), "2025-02-01", "2025-02-28", "0s") })
	}
	readers.Wait()
	wait.For(t, "the breaker to open", 30*time.Second, func() bool {
		left, err := guards.BreakerOpen(ctx, "")
		return err == nil && left > 0
	})
}

// TestAdaptiveCut: after 50 calls of about 200 ms, a call that hangs is
// ended by the worker within seconds (3 times the back end's p99, never
// below 2 s), not at the 60 s timeout. Timed at the BI server.
func TestAdaptiveCut(t *testing.T) {
	bi := newStallingBI(t)
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     redistest.URL(t),
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "100",
	}
	startRole(t, "worker", env)
	api := startRole(t, "api", env)
	var readers sync.WaitGroup
	for i := range 50 {
		readers.Go(func() {
			// 5 customers: each has at most DASHCACHE_CUSTOMER_PENDING fills
			// outstanding.
			if r := get(t, api, "healthy"+strconv.Itoa(i%5), day(i), day(i), "20s"); r.status != http.StatusOK {
				t.Errorf("healthy read %d: %d %s", i, r.status, r.body)
			}
		})
	}
	readers.Wait()
	if n := bi.healthy.Load(); n != 50 {
		t.Fatalf("%d calls at the BI server, want 50", n)
	}
	get(t, api, "stalled", "2025-01-01", "2025-01-31", "0s")
	select {
	case d := <-bi.hung:
		if d > 5*time.Second {
			t.Errorf("the hanging call was ended after %s, want within seconds", d)
		}
		t.Logf("the hanging call was ended after %s", d.Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatal("the hanging call was not ended within 30 s")
	}
}
