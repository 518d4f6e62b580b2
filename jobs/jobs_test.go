package jobs_test

import (
	"cmp"
	"context"
	"errors"
	"go.opentelemetry.io/otel/trace"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

var today = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

func key(t *testing.T, c string) dashcache.ReportKey {
	k, err := dashcache.ParseReportKey(c, "2025-01-01", "2025-01-31", today)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func redisClient(t *testing.T) *redis.Client {
	m := miniredis.RunT(t)
	m.ClockTTL(true)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// newGuard returns a guard of cfg on rdb; zero fields take those of a guard
// that lets every call through at once.
func newGuard(t *testing.T, rdb *redis.Client, cfg guard.Config) *guard.Guard {
	t.Helper()
	cfg.State = store.New(rdb).Guards
	if cfg.Backends == nil {
		cfg.Backends = map[string]guard.Backend{"": {Rate: 10000}}
	}
	cfg.CustomerShare = cmp.Or(cfg.CustomerShare, 10000)
	g, err := guard.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func newEnqueuer(t *testing.T, rdb *redis.Client) *jobs.Enqueuer {
	t.Helper()
	return enqueuerWith(t, rdb, guard.Config{})
}

// enqueuerWith returns an Enqueuer on rdb whose fills a guard of cfg admits.
func enqueuerWith(t *testing.T, rdb *redis.Client, cfg guard.Config) *jobs.Enqueuer {
	t.Helper()
	st := store.New(rdb)
	enq, err := jobs.NewEnqueuer(jobs.EnqueuerConfig{Redis: rdb, Cache: st.Cache, Index: st.Index, Admission: newGuard(t, rdb, cfg)})
	if err != nil {
		t.Fatal(err)
	}
	return enq
}

// handlerConfig is the config of a handler on rdb that calls src under a
// guard of gcfg (see newGuard).
func handlerConfig(t *testing.T, rdb *redis.Client, src dashcache.ReportSource, gcfg guard.Config) jobs.HandlerConfig {
	st := store.New(rdb)
	return jobs.HandlerConfig{Cache: st.Cache, Index: st.Index, Guard: newGuard(t, rdb, gcfg), Source: src, Now: func() time.Time { return today }}
}

func newHandler(t *testing.T, rdb *redis.Client, sim *provider.Simulator, reg ...prometheus.Registerer) *jobs.Handler {
	cfg := handlerConfig(t, rdb, sim, guard.Config{})
	if len(reg) > 0 {
		cfg.Registerer = reg[0]
	}
	h, err := jobs.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandlerFillsOnceThenFindsCache(t *testing.T) {
	rdb := redisClient(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	h := newHandler(t, rdb, sim)
	k := key(t, "acme")
	for range 2 {
		if err := h.ProcessTask(context.Background(), jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{})); err != nil {
			t.Fatal(err)
		}
	}
	if sim.Calls() != 1 {
		t.Fatalf("BI calls %d, want 1: the second task must find the report cached", sim.Calls())
	}
	raw, _ := store.New(rdb).Cache.Get(context.Background(), k)
	e, err := store.ParseEntry(raw)
	json, jerr := e.JSON()
	if err != nil || jerr != nil || !strings.Contains(json, `"data":{"customer":"acme"`) {
		t.Fatalf("cached entry %q (%v, %v)", raw, err, jerr)
	}
	if ttl := rdb.PTTL(context.Background(), store.EntryKey(k)).Val(); ttl <= 24*time.Hour {
		t.Errorf("closed range cached for %s, want the long TTL", ttl)
	}
	if n, _ := rdb.Exists(context.Background(), store.LockKey(k)).Result(); n != 0 {
		t.Error("lock left behind after the fill")
	}
}

func TestHandlerContendedMakesNoCall(t *testing.T) {
	rdb := redisClient(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	reg := prometheus.NewRegistry()
	h := newHandler(t, rdb, sim, reg)
	k := key(t, "acme")
	other, err := store.New(rdb).Cache.Obtain(context.Background(), k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.ProcessTask(context.Background(), jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{})); err != nil {
		t.Fatalf("contended task: %v, want nil (someone else is filling)", err)
	}
	if sim.Calls() != 0 {
		t.Fatalf("BI calls %d while another worker held the lock", sim.Calls())
	}
	other.Release(context.Background())
	if err := h.ProcessTask(context.Background(), jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{})); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP dashcache_lock_total Fill locks: acquired, contended (another worker was filling), lost (expired or taken over before the write).
# TYPE dashcache_lock_total counter
dashcache_lock_total{result="acquired"} 1
dashcache_lock_total{result="contended"} 1
dashcache_lock_total{result="lost"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dashcache_lock_total"); err != nil {
		t.Error(err)
	}
}

func TestRetryDelay(t *testing.T) {
	rl := &dashcache.ProviderError{Outcome: dashcache.OutcomeRateLimited, Status: 429, RetryAfter: 7 * time.Second}
	if d := jobs.RetryDelay(3, rl, nil); d != 7*time.Second {
		t.Errorf("429 with Retry-After 7s waits %s", d)
	}
	deferred := &dashcache.Deferral{Reason: dashcache.ReasonShare, Delay: 2 * time.Second}
	for range 20 {
		if d := jobs.RetryDelay(3, deferred, nil); d < 2*time.Second || d > 2500*time.Millisecond {
			t.Errorf("a deferral of 2s waits %s, want within [2s, 2.5s]", d)
		}
	}
	for n, want := range map[int]time.Duration{0: time.Second, 1: 2 * time.Second, 3: 8 * time.Second, 20: time.Minute} {
		for range 20 {
			d := jobs.RetryDelay(n, errors.New("boom"), nil)
			if d < want/2 || d > want {
				t.Errorf("retry %d waits %s, want within [%s, %s]", n, d, want/2, want)
			}
		}
	}
}

// runWorker runs the real asynq server of a worker on rdb until the test ends.
func runWorker(t *testing.T, rdb *redis.Client, sim *provider.Simulator) {
	w := jobs.NewWorker(rdb, newHandler(t, rdb, sim), jobs.WorkerConfig{Concurrency: 2})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
}

// waitFailure waits for the fill notification of k and returns the failure
// then remembered.
func waitFailure(t *testing.T, filled <-chan string, st store.Store, k dashcache.ReportKey) string {
	t.Helper()
	for timeout := time.After(20 * time.Second); ; {
		select {
		case c := <-filled:
			if c != k.String() {
				continue
			}
		case <-timeout:
			t.Fatal("no notification of the failure")
		}
		break
	}
	found, err := st.Cache.Lookup(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	return found[0].Failure
}

// waitTaskGone waits until the task ID is free on queue: the task is neither
// queued, running, retried nor archived.
func waitTaskGone(t *testing.T, rdb *redis.Client, queue string, k dashcache.ReportKey) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	var info *asynq.TaskInfo
	var err error
	if !wait.Until(10*time.Second, func() bool {
		info, err = insp.GetTaskInfo(queue, k.TaskID())
		return errors.Is(err, asynq.ErrTaskNotFound)
	}) {
		t.Fatalf("task still present in state %v: a failure must not leave it archived", info.State)
	}
}

// waitTaskFreed waits until the report's interactive task is gone and checks
// that the report can be enqueued again.
func waitTaskFreed(t *testing.T, rdb *redis.Client, k dashcache.ReportKey) {
	t.Helper()
	waitTaskGone(t, rdb, jobs.QueueInteractive, k)
	if ok, err := newEnqueuer(t, rdb).Ensure(context.Background(), k); !ok || err != nil {
		t.Fatalf("re-enqueue after failure: enqueued %v err %v, want a fresh task", ok, err)
	}
}

// TestFailureIsRememberedNotArchived: a permanent failure (on its first
// attempt) and a transient one on the last attempt are remembered for readers,
// called once, and leave the task ID free instead of archived.
func TestFailureIsRememberedNotArchived(t *testing.T) {
	for _, c := range []struct {
		name     string
		status   int
		maxRetry int // of the task
		want     []string
	}{
		{"permanent", 404, jobs.MaxRetry, []string{"permanent", "HTTP 404"}},
		{"transient on the last attempt", 503, 0, []string{"transient", "HTTP 503"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rdb := redisClient(t)
			sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1,
				Fail: func(dashcache.ReportKey) (int, time.Duration) { return c.status, 0 }})
			st, filled := subscribed(t, rdb)
			k := key(t, "failing")
			client := asynq.NewClientFromRedisClient(rdb)
			if _, err := client.Enqueue(jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{}), asynq.MaxRetry(c.maxRetry)); err != nil {
				t.Fatal(err)
			}
			runWorker(t, rdb, sim)
			f := waitFailure(t, filled, st, k)
			for _, w := range c.want {
				if !strings.Contains(f, w) {
					t.Errorf("remembered failure %q lacks %q", f, w)
				}
			}
			waitTaskGone(t, rdb, jobs.QueueInteractive, k)
			if sim.Calls() != 1 {
				t.Errorf("BI calls %d, want 1", sim.Calls())
			}
			waitTaskFreed(t, rdb, k)
		})
	}
}

// TestLastAttemptThatLostItsLockIsNotArchived: a final attempt whose lock was
// taken over during the BI call neither writes over the new holder nor leaves
// an archived task behind.
func TestLastAttemptThatLostItsLockIsNotArchived(t *testing.T) {
	rdb := redisClient(t)
	k := key(t, "stolen")
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1,
		Fail: func(dashcache.ReportKey) (int, time.Duration) {
			rdb.Set(context.Background(), store.LockKey(k), "another-worker", time.Minute)
			return 503, 0
		}})
	c := asynq.NewClientFromRedisClient(rdb)
	if _, err := c.Enqueue(jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{}), asynq.MaxRetry(0)); err != nil {
		t.Fatal(err)
	}
	runWorker(t, rdb, sim)
	// The task ends (its ID is free) without a failure written over the new
	// holder's lock.
	waitTaskFreed(t, rdb, k)
	if sim.Calls() != 1 {
		t.Fatalf("BI calls %d, want 1", sim.Calls())
	}
	if found, _ := store.New(rdb).Cache.Lookup(context.Background(), k); len(found) == 1 && found[0].Failure != "" {
		t.Errorf("a worker that lost its lock remembered a failure: %q", found[0].Failure)
	}
	if tok := rdb.Get(context.Background(), store.LockKey(k)).Val(); tok != "another-worker" {
		t.Errorf("the new holder's lock became %q", tok)
	}
}

// TestForcedTaskRefreshesFreshReport: a fill task for a fresh report makes no
// BI call unless it is forced; the force survives the trip through Redis.
func TestForcedTaskRefreshesFreshReport(t *testing.T) {
	rdb := redisClient(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	k := key(t, "fresh")
	if err := newHandler(t, rdb, sim).ProcessTask(context.Background(), jobs.NewTask(context.Background(), k, jobs.QueueWarming, dashcache.Refresh{})); err != nil {
		t.Fatal(err)
	}
	runWorker(t, rdb, sim)
	for _, force := range []bool{false, true} {
		if ok, err := newEnqueuer(t, rdb).Warm(context.Background(), k, dashcache.Refresh{Force: force}); !ok || err != nil {
			t.Fatal(ok, err)
		}
		waitTaskGone(t, rdb, jobs.QueueWarming, k)
	}
	if sim.Calls() != 2 {
		t.Fatalf("BI calls %d, want 2: one fill, no call for the fresh report, one forced refresh", sim.Calls())
	}
}

// TestRefreshRules: a plain task refreshes only a missing or stale report; a
// task that saw the report at computed-at T refreshes it unless it was
// recomputed since; a forced task always refreshes.
func TestRefreshRules(t *testing.T) {
	rdb := redisClient(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	k := key(t, "rules")
	at := func(now time.Time) *jobs.Handler {
		cfg := handlerConfig(t, rdb, sim, guard.Config{})
		cfg.Now = func() time.Time { return now }
		h, err := jobs.NewHandler(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	computedAt := func() time.Time {
		raw, _ := store.New(rdb).Cache.Get(context.Background(), k)
		e, err := store.ParseEntry(raw)
		if err != nil {
			t.Fatal(err)
		}
		return e.ComputedAt
	}
	staleTime := today.Add(dashcache.ClosedTTL + time.Minute)
	steps := []struct {
		name  string
		now   time.Time
		r     func() dashcache.Refresh
		calls int64
	}{
		{"missing", today, func() dashcache.Refresh { return dashcache.Refresh{} }, 1},
		{"fresh", today, func() dashcache.Refresh { return dashcache.Refresh{} }, 1},
		{"seen an older one", today, func() dashcache.Refresh { return dashcache.Refresh{Seen: computedAt().Add(-time.Millisecond)} }, 1},
		{"seen this one", today.Add(time.Second), func() dashcache.Refresh { return dashcache.Refresh{Seen: computedAt()} }, 2},
		{"forced", today.Add(2 * time.Second), func() dashcache.Refresh { return dashcache.Refresh{Force: true} }, 3},
		{"stale", staleTime, func() dashcache.Refresh { return dashcache.Refresh{} }, 4},
		{"fresh again", staleTime, func() dashcache.Refresh { return dashcache.Refresh{} }, 4},
	}
	for _, s := range steps {
		if err := at(s.now).ProcessTask(context.Background(), jobs.NewTask(context.Background(), k, jobs.QueueWarming, s.r())); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := sim.Calls(); got != s.calls {
			t.Fatalf("%s: BI calls %d, want %d", s.name, got, s.calls)
		}
	}
	if ttl := rdb.PTTL(context.Background(), store.EntryKey(k)).Val(); ttl <= dashcache.ClosedTTL {
		t.Errorf("Redis TTL %s: a report must outlive its freshness by the stale window", ttl)
	}
}

// TestEnsureRescuesOrphanedTask: a task that is active in asynq while no worker
// holds the report's lock (its worker died) gets a rescue task; one whose
// worker holds the lock does not.
func TestEnsureRescuesOrphanedTask(t *testing.T) {
	rdb := redisClient(t)
	k := key(t, "orphan")
	enq := newEnqueuer(t, rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)

	// A worker that takes the task and hangs without locking, as if it died.
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{jobs.QueueInteractive: 1}, TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	if ok, err := enq.Ensure(context.Background(), k); !ok || err != nil {
		t.Fatal(ok, err)
	}
	<-started

	lock, err := store.New(rdb).Cache.Obtain(context.Background(), k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := enq.Ensure(context.Background(), k); ok || err != nil {
		t.Fatalf("Ensure with the lock held: %v %v, want a plain duplicate", ok, err)
	}
	if _, err := insp.GetTaskInfo(jobs.QueueInteractive, jobs.RescueID(k)); !errors.Is(err, asynq.ErrTaskNotFound) {
		t.Fatalf("a rescue was enqueued while a worker held the lock: %v", err)
	}

	lock.Release(context.Background())
	if ok, err := enq.Ensure(context.Background(), k); !ok || err != nil {
		t.Fatalf("Ensure on an orphan: %v %v, want a rescue enqueued", ok, err)
	}
	info, err := insp.GetTaskInfo(jobs.QueueInteractive, jobs.RescueID(k))
	if err != nil || string(info.Payload) != k.String() || info.Type != jobs.TypeFill {
		t.Fatalf("rescue task %+v, %v", info, err)
	}
	if ok, _ := enq.Ensure(context.Background(), k); ok {
		t.Error("a second rescue was enqueued while the first is pending")
	}
}

// TestRescueAfterRegistryLost: after a Redis restart without persistence,
// asynq's queue registry is gone while this process's client believes it
// wrote it; the rescue of a dead worker's task still works.
func TestRescueAfterRegistryLost(t *testing.T) {
	rdb := redisClient(t)
	enq := newEnqueuer(t, rdb)
	if ok, err := enq.Ensure(context.Background(), key(t, "before")); !ok || err != nil {
		t.Fatal(ok, err)
	}
	rdb.FlushAll(context.Background()) // the restart

	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{Concurrency: 1, Queues: map[string]int{jobs.QueueInteractive: 1}, TaskCheckInterval: 50 * time.Millisecond})
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		started <- struct{}{}
		<-release
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	defer close(release)
	k := key(t, "orphan")
	if ok, err := enq.Ensure(context.Background(), k); !ok || err != nil {
		t.Fatal(ok, err)
	}
	<-started // and, holding no lock, as good as dead
	if ok, err := enq.Ensure(context.Background(), k); !ok || err != nil {
		t.Fatalf("Ensure on an orphan after the registry was lost: %v %v, want a rescue enqueued", ok, err)
	}
}

// TestInvalidationOutlivesItsCaller: an invalidation whose caller leaves
// while an API process is slow to hand its reads over still marks what the
// change made stale, and says the process did not answer.
func TestInvalidationOutlivesItsCaller(t *testing.T) {
	rdb := redisClient(t)
	st, ctx, now := store.New(rdb), context.Background(), time.Now()
	k := key(t, "acme")
	lock, err := st.Cache.Obtain(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Fill(ctx, store.NewEntry(k, []byte(`1`), now, time.Second, time.Hour), 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := st.Index.IndexFill(ctx, k, now, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	// An API process that hears the ask and never answers.
	sub, err := st.Cache.Subscribe(ctx, store.Listener{Filled: func(string, trace.SpanContext) {}, HandOver: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	go sub.Run(t.Context())
	defer sub.Close()

	leaving, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	ch := dashcache.Changed{Customers: []string{"acme"}, From: k.From, To: k.From}
	res, err := newEnqueuer(t, rdb).Invalidate(leaving, ch, time.Hour)
	if want := (dashcache.Invalidation{Matched: 1, MarkedStale: 1, APIs: 1, APIsUnanswered: 1}); err != nil || res != want {
		t.Fatalf("Invalidate = %+v, %v; want %+v", res, err, want)
	}
	raw, _ := st.Cache.Get(ctx, k)
	if e, err := store.ParseEntry(raw); err != nil || e.Fresh(time.Now()) {
		t.Errorf("the report after the invalidation: %+v, %v; want it stale", e, err)
	}
}

// TestInvalidationRefreshesStaleReads: a report read a moment ago that was
// already stale when the change was announced (its fill, ending as the
// change was logged, marked it itself) is refreshed at once too: the data
// changed under it as well.
func TestInvalidationRefreshesStaleReads(t *testing.T) {
	rdb := redisClient(t)
	st, ctx, now := store.New(rdb), context.Background(), time.Now()
	k := key(t, "acme")
	lock, err := st.Cache.Obtain(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := lock.Fill(ctx, store.NewEntry(k, []byte(`1`), now.Add(-time.Hour), time.Second, time.Minute), 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	lock.Release(ctx)
	if err := st.Index.IndexFill(ctx, k, now, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.Index.RecordReads(ctx, map[dashcache.ReportKey]time.Time{k: now}); err != nil {
		t.Fatal(err)
	}
	res, err := newEnqueuer(t, rdb).Invalidate(ctx, dashcache.Changed{Customers: []string{"acme"}, From: k.From, To: k.From}, time.Hour)
	if want := (dashcache.Invalidation{Matched: 1, MarkedStale: 0, Refreshed: 1}); err != nil || res != want {
		t.Fatalf("Invalidate = %+v, %v; want %+v", res, err, want)
	}
	if _, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(jobs.QueueWarming, k.TaskID()); err != nil {
		t.Errorf("no refresh task of %s on the warming queue: %v", k, err)
	}
}

// TestFreshnessOverride: a report's freshness, as the catalogue overrides
// it, is how long its filled entry stays fresh; other reports keep the
// defaults.
func TestFreshnessOverride(t *testing.T) {
	rdb := redisClient(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	cfg := handlerConfig(t, rdb, sim, guard.Config{})
	cfg.Reports = dashcache.Served{Named: []string{"hourly"}}
	cfg.Freshness = func(report string) dashcache.Freshness {
		if report == "hourly" {
			return dashcache.Freshness{Closed: time.Hour}
		}
		return dashcache.Freshness{}
	}
	h, err := jobs.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hourly, def := key(t, "acme"), key(t, "acme")
	hourly.Report = "hourly"
	for k, want := range map[dashcache.ReportKey]time.Duration{hourly: time.Hour, def: dashcache.ClosedTTL} {
		if err := h.ProcessTask(context.Background(), jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{})); err != nil {
			t.Fatal(err)
		}
		raw, _ := store.New(rdb).Cache.Get(context.Background(), k)
		e, err := store.ParseEntry(raw)
		if err != nil || e.FreshUntil.Sub(e.ComputedAt) != want {
			t.Errorf("%s: fresh for %s (%v), want %s", k, e.FreshUntil.Sub(e.ComputedAt), err, want)
		}
	}
}

// TestUnservedReport: a task of a report this worker does not serve (its
// catalogue has no such report, or there is no default report) makes no
// BI call and takes no rate token; on its last attempt (as here: no asynq
// retry count) its failure is remembered. Earlier attempts are retried as
// a transient failure is (TestFailureIsRememberedNotArchived).
func TestUnservedReport(t *testing.T) {
	rdb := redisClient(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	cfg := handlerConfig(t, rdb, sim, guard.Config{})
	cfg.Reports = dashcache.Served{Named: []string{"revenue"}, NoDefault: true}
	h, err := jobs.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb)
	orders := key(t, "acme")
	orders.Report = "orders"
	for _, k := range []dashcache.ReportKey{orders, key(t, "acme")} {
		if err := h.ProcessTask(context.Background(), jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{})); err != nil {
			t.Fatalf("%s: %v; want the failure remembered, not retried", k, err)
		}
		if found, err := st.Cache.Lookup(context.Background(), k); err != nil || found[0].Failure == "" {
			t.Errorf("%s: %+v, %v; want a failure remembered", k, found, err)
		}
	}
	if sim.Calls() != 0 {
		t.Errorf("%d BI calls for reports not served", sim.Calls())
	}
	if n := rdb.Keys(context.Background(), "dashcache:{provider*").Val(); len(n) != 0 {
		t.Errorf("back end keys %q written for reports not served", n)
	}
}
