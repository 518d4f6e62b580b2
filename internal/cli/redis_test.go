package cli

import (
	"context"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// TestRefusesEvictingRedis: no role starts on a Redis whose
// maxmemory-policy may evict the queue, and the error says what to set.
func TestRefusesEvictingRedis(t *testing.T) {
	srv := redistest.Server(t, "--maxmemory-policy", "allkeys-lru")
	env := map[string]string{"DASHCACHE_REDIS_URL": srv.URL(0), "DASHCACHE_LISTEN": "127.0.0.1:0"}
	for _, role := range []string{"api", "worker", "warm"} {
		args := []string{role}
		if role == "warm" {
			args = append(args, "--customers", "acme", "--ranges", "yesterday")
		}
		err := Run(t.Context(), args, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "allkeys-lru") || !strings.Contains(err.Error(), "maxmemory-policy noeviction") {
			t.Errorf("%s on allkeys-lru: %v; want a refusal naming the policy and what to set", role, err)
		}
	}
}

// TestRefusesUnreachableCacheRedis: no role starts when the reports' own
// Redis (DASHCACHE_CACHE_REDIS_URL) does not answer, though the queue's does.
func TestRefusesUnreachableCacheRedis(t *testing.T) {
	redisURL, _ := redistest.URLClient(t)
	env := map[string]string{"DASHCACHE_REDIS_URL": redisURL, "DASHCACHE_CACHE_REDIS_URL": "redis://127.0.0.1:1/0", "DASHCACHE_LISTEN": "127.0.0.1:0"}
	for _, args := range [][]string{{"api"}, {"worker"}, {"warm", "--customers", "acme", "--ranges", "yesterday"}} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a role that started would serve until then
		err := Run(ctx, args, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "DASHCACHE_CACHE_REDIS_URL") {
			t.Errorf("%s with an unreachable reports' Redis: %v; want a refusal naming DASHCACHE_CACHE_REDIS_URL", args[0], err)
		}
		cancel()
	}
}

// TestRedisRestartMidWait: Redis killed during a fill (its BI call in flight)
// and started again, empty, on the same port: the reader who was waiting,
// with one request, gets the report within the BI call's time and 5 s of
// Redis being back.
func TestRedisRestartMidWait(t *testing.T) {
	srv := redistest.Server(t)
	bi := newBIServer(t, time.Second, "acme")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    srv.URL(0),
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	startRole(t, "worker", env)
	addr := startRole(t, "api", env)
	answer := make(chan read, 1)
	go func() { answer <- get(t, addr, "acme", "2025-01-01", "2025-01-31", "30s") }()
	bi.waitFirstCall(t)
	srv.Kill()
	time.Sleep(time.Second) // the outage
	srv.Start()
	back := time.Now()
	r := <-answer
	if r.status != http.StatusOK || time.Since(back) > 6*time.Second {
		t.Errorf("the waiting reader: %d %s after Redis was back; want the report within 1 s + 5 s", r.status, time.Since(back))
	}
	t.Logf("served %s after Redis was back, with %d BI calls", time.Since(back).Round(time.Millisecond), bi.calls.Load())
}

// TestWorkerKilledMidCall: a worker process killed with -9 during its BI call
// leaves its task active in asynq for a minute or more. The one reader
// waiting (wait=30s) gets the report from a rescue task within 25 s, once the
// dead worker's lock expires, at the cost of one more BI call, and this after
// a restart of Redis that lost asynq's queue registry.
func TestWorkerKilledMidCall(t *testing.T) {
	srv := redistest.Server(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	var calls atomic.Int64
	firstCall := make(chan struct{})
	bi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/query" && strings.HasPrefix(r.Header.Get("Idempotency-Key"), "orphan|") && calls.Add(1) == 1 {
			close(firstCall)
			io.Copy(io.Discard, r.Body) // so that the server notices the caller's death
			<-r.Context().Done()        // hangs until its caller dies
			return
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	defer bi.Close()
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    srv.URL(0),
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	worker := startProcess(t, "worker", env)
	addr := startRole(t, "api", env)
	if r := get(t, addr, "before", "2025-01-01", "2025-01-31", "10s"); r.status != http.StatusOK {
		t.Fatalf("before the restart: %d %s", r.status, r.body)
	}
	srv.Kill()
	srv.Start() // empty: asynq's queue registry is gone

	start := time.Now()
	answer := make(chan read, 1)
	go func() { answer <- get(t, addr, "orphan", "2025-01-01", "2025-01-31", "30s") }()
	select {
	case <-firstCall:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker never called the BI platform")
	}
	worker.Process.Kill()
	worker.Wait()
	startProcess(t, "worker", env)
	r := <-answer
	if r.status != http.StatusOK || time.Since(start) > 25*time.Second {
		t.Fatalf("the waiting reader: %d after %s; want the report within 25 s", r.status, time.Since(start))
	}
	t.Logf("served %s after the read began", time.Since(start).Round(time.Millisecond))
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	k, _ := dashcache.ParseReportKey("orphan", "2025-01-01", "2025-01-31", time.Now())
	if info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(jobs.QueueInteractive, k.TaskID()); err != nil || info.State != asynq.TaskStateActive {
		t.Errorf("the dead worker's task: %v %v; want it still active (answered by the rescue, not by asynq's recovery)", info, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("BI calls %d, want 2: the lost one and the rescue", n)
	}
}

// TestWorkerSIGTERMMidCall: a worker stopped with SIGTERM during its BI call
// finishes the call and fills the report before it exits: no fill is lost.
func TestWorkerSIGTERMMidCall(t *testing.T) {
	bi := newBIServer(t, 2*time.Second, "acme")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redistest.URL(t),
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	worker := startProcess(t, "worker", env)
	addr := startRole(t, "api", env)
	answer := make(chan read, 1)
	go func() { answer <- get(t, addr, "acme", "2025-01-01", "2025-01-31", "20s") }()
	bi.waitFirstCall(t)
	worker.Process.Signal(syscall.SIGTERM)
	if err := worker.Wait(); err != nil {
		t.Errorf("the worker exited with %v after SIGTERM", err)
	}
	if r := <-answer; r.status != http.StatusOK || bi.calls.Load() != 1 {
		t.Errorf("the reader got %d after %d BI calls; want the report the stopping worker filled, 1 call", r.status, bi.calls.Load())
	}
}

// TestMemoryPressure: the supported setup under memory pressure: the queue
// on a Redis that never evicts, the reports on one of 2 MB that evicts
// (allkeys-lru, locks included). A warm of 600 year-long reports (about
// 3.6 KB each, compressed) overflows the cache; every report is still
// filled, and no task is left in any queue.
func TestMemoryPressure(t *testing.T) {
	queue := redistest.Server(t)
	cache := redistest.Server(t, "--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru")
	bi := newBIServer(t, 10*time.Millisecond, "")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":       queue.URL(0),
		"DASHCACHE_CACHE_REDIS_URL": cache.URL(0),
		"DASHCACHE_LISTEN":          "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":    bi.URL,
		"DASHCACHE_PROVIDER_RATE":   "200",
	}
	startRole(t, "worker", env)
	startRole(t, "worker", env)
	queueRdb := redis.NewClient(&redis.Options{Addr: queue.Addr})
	defer queueRdb.Close()
	cacheRdb := redis.NewClient(&redis.Options{Addr: cache.Addr})
	defer cacheRdb.Close()
	filled := make(chan string, 1000)
	sub, err := store.New(queueRdb, store.WithCache(cacheRdb)).Cache.Subscribe(context.Background(), store.Listener{Filled: func(k string, _ trace.SpanContext) { filled <- k }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	go sub.Run(t.Context())

	var customers []string
	for i := range 600 {
		customers = append(customers, fmt.Sprintf("c%d", i))
	}
	var out strings.Builder
	err = Run(t.Context(), []string{"warm", "--customers", strings.Join(customers, ","), "--from", "2024-01-01", "--to", "2024-12-31"},
		func(k string) string { return env[k] }, &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), "600 enqueued") {
		t.Fatalf("warm: %v\n%s", err, out.String())
	}
	got := map[string]bool{}
	for len(got) < len(customers) {
		select {
		case k := <-filled:
			got[k] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of 600 reports filled; the rest neither filled nor failed within 30 s", len(got))
		}
	}
	waitIdle(t, queueRdb)
	evicted, _ := cacheRdb.Info(context.Background(), "stats").Result()
	if !strings.Contains(evicted, "evicted_keys:") || strings.Contains(evicted, "evicted_keys:0\r") {
		t.Errorf("the cache evicted nothing: no memory pressure to speak of")
	}
	t.Logf("600 reports filled with %d BI calls; cache %s", bi.calls.Load(), infoField(evicted, "evicted_keys"))
}

func infoField(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return name + " " + strings.TrimSpace(v)
		}
	}
	return name + " ?"
}

// TestFleetRateHoldsEverySecond: at a fleet rate of 20/s (bursts of 5), two
// workers filling 150 reports as fast as they may never let the BI server
// see more than 20 calls within any second.
func TestFleetRateHoldsEverySecond(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	bi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/query" {
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	defer bi.Close()
	env := map[string]string{
		"DASHCACHE_REDIS_URL":      redistest.URL(t),
		"DASHCACHE_LISTEN":         "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":   bi.URL,
		"DASHCACHE_PROVIDER_RATE":  "20",
		"DASHCACHE_PROVIDER_BURST": "5",
	}
	startRole(t, "worker", env)
	startRole(t, "worker", env)
	var customers []string
	for i := range 150 {
		customers = append(customers, fmt.Sprintf("r%d", i))
	}
	if err := Run(t.Context(), []string{"warm", "--customers", strings.Join(customers, ","), "--from", "2025-01-01", "--to", "2025-01-31"},
		func(k string) string { return env[k] }, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var n int
	if !wait.Until(30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		n = len(arrivals)
		return n >= 150
	}) {
		t.Fatalf("%d of 150 calls in 30 s", n)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(arrivals, func(a, b time.Time) int { return a.Compare(b) })
	busiest := 0
	for i, a := range arrivals { // every window of a second that starts at a call
		j, _ := slices.BinarySearchFunc(arrivals, a.Add(time.Second), func(x, target time.Time) int { return x.Compare(target) })
		busiest = max(busiest, j-i)
	}
	if busiest > 20 {
		t.Errorf("the BI server saw %d calls within one second, at a fleet rate of 20", busiest)
	}
	t.Logf("150 calls in %s; the busiest second saw %d", arrivals[len(arrivals)-1].Sub(arrivals[0]).Round(time.Millisecond), busiest)
}

// TestSkewedWorkerClock: a worker whose clock is 10 minutes behind the API's
// fills a report of a range that includes today once; the readers after it
// are served hits, and no refresh makes another BI call.
func TestSkewedWorkerClock(t *testing.T) {
	rdb := redistest.Client(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	st := store.New(rdb)
	clock := func(skew time.Duration) func() time.Time {
		c := store.NewClock(rdb, func() time.Time { return time.Now().Add(skew) })
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Shutdown)
		return c.Now
	}
	bi, err := guard.New(guard.Config{State: st.Guards})
	if err != nil {
		t.Fatal(err)
	}
	h, err := jobs.NewHandler(jobs.HandlerConfig{Cache: st.Cache, Index: st.Index, Guard: bi, Source: sim, Now: clock(-10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	w := jobs.NewWorker(rdb, h, jobs.WorkerConfig{})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown()
	queue, err := jobs.NewEnqueuer(jobs.EnqueuerConfig{Redis: rdb, Cache: st.Cache, Index: st.Index, Admission: bi})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{Cache: st.Cache, Usage: bi, Redis: st.Cache, Queue: queue, Now: clock(0), Log: zerolog.New(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	today := dashcache.DayOf(time.Now()).String()
	for i := range 5 {
		resp, err := http.Get(hs.URL + "/v1/reports?customer=acme&from=" + today + "&to=" + today)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := map[bool]string{true: "miss", false: "hit"}[i == 0]
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != want {
			t.Errorf("read %d: %d X-Cache %q, want 200 %s", i, resp.StatusCode, resp.Header.Get("X-Cache"), want)
		}
	}
	// No refresh: one asked for by a read would be enqueued in the API's
	// background, which Shutdown waits for; once the queues are idle after
	// that, it has run, and its BI call is counted.
	srv.Shutdown(context.Background())
	waitIdle(t, rdb)
	if n := sim.Calls(); n != 1 {
		t.Errorf("%d BI calls, want 1: the skew made the report look stale", n)
	}
}

// TestCorruptEntryHealed: garbage written over a cached report is refilled
// by the next read, which is served the report.
func TestCorruptEntryHealed(t *testing.T) {
	bi := newBIServer(t, 0, "")
	rdb := redistest.Client(t)
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    fmt.Sprintf("redis://%s/%d", rdb.Options().Addr, rdb.Options().DB),
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	startRole(t, "worker", env)
	addr := startRole(t, "api", env)
	if r := get(t, addr, "healed", "2025-01-01", "2025-01-31", "10s"); r.status != http.StatusOK {
		t.Fatalf("first read: %d", r.status)
	}
	k, _ := dashcache.ParseReportKey("healed", "2025-01-01", "2025-01-31", time.Now())
	rdb.Set(context.Background(), store.EntryKey(k), "garbage", 0)
	if r := get(t, addr, "healed", "2025-01-01", "2025-01-31", "10s"); r.status != http.StatusOK || !strings.Contains(r.body, `"customer":"healed"`) {
		t.Errorf("after the corruption: %d %s; want the report, refilled", r.status, r.body)
	}
	r := get(t, addr, "healed", "2025-01-01", "2025-01-31", "10s")
	// No third call: a fill these reads asked for was enqueued before they
	// were answered; once the queues are idle it has run, and its BI call
	// is counted.
	waitIdle(t, rdb)
	if r.status != http.StatusOK || bi.calls.Load() != 2 {
		t.Errorf("then: %d after %d BI calls; want a hit, and 2 calls", r.status, bi.calls.Load())
	}
}
