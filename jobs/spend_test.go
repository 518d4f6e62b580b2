package jobs_test

import (
	"context"
	"errors"
	"go.opentelemetry.io/otel/trace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// scripted is a BI platform whose answers the test chooses, call by call.
type scripted struct {
	calls   atomic.Int64
	answer  func(ctx context.Context, n int64, k dashcache.ReportKey) ([]byte, error)
	mu      sync.Mutex
	flying  map[string]int // calls in flight by customer
	maxSeen int
}

func (s *scripted) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	n := s.calls.Add(1)
	s.mu.Lock()
	if s.flying == nil {
		s.flying = map[string]int{}
	}
	s.flying[k.Customer]++
	s.maxSeen = max(s.maxSeen, s.flying[k.Customer])
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.flying[k.Customer]--
		s.mu.Unlock()
	}()
	return s.answer(ctx, n, k)
}

func (s *scripted) Customers(context.Context) ([]string, error) { return nil, nil }

// subscribed returns a Store on rdb and the fill notifications it hears
// (as many as 100 unread), until the test ends.
func subscribed(t *testing.T, rdb *redis.Client) (store.Store, <-chan string) {
	t.Helper()
	st := store.New(rdb)
	filled := make(chan string, 100)
	sub, err := st.Cache.Subscribe(context.Background(), store.Listener{Filled: func(c string, _ trace.SpanContext) {
		select {
		case filled <- c:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go sub.Run(ctx)
	t.Cleanup(func() { cancel(); sub.Close() })
	return st, filled
}

// runHandler runs a worker with h until the test ends.
func runHandler(t *testing.T, rdb *redis.Client, h *jobs.Handler) {
	startWorker(t, rdb, h, 0)
}

// startWorker starts a worker with h and the shutdown grace given (0:
// default), shut down when the test ends if not before.
func startWorker(t *testing.T, rdb *redis.Client, h *jobs.Handler, grace time.Duration) *jobs.Worker {
	w := jobs.NewWorker(rdb, h, jobs.WorkerConfig{Concurrency: 4, ShutdownGrace: grace})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Shutdown)
	return w
}

func handlerFor(t *testing.T, rdb *redis.Client, src dashcache.ReportSource, gcfg guard.Config) *jobs.Handler {
	cfg := handlerConfig(t, rdb, src, gcfg)
	cfg.Inspector = asynq.NewInspectorFromRedisClient(rdb)
	h, err := jobs.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// waitCached waits, up to 10 s, until k's report is cached.
func waitCached(t *testing.T, rdb *redis.Client, k dashcache.ReportKey) {
	t.Helper()
	wait.For(t, k.String()+" to be filled", 10*time.Second, func() bool {
		e, _ := store.New(rdb).Cache.Get(context.Background(), k)
		return e != ""
	})
}

// TestDeferredTaskWaitsForShare: a task whose customer has its share of BI
// calls in flight goes back to the queue without using up a retry, and runs
// as soon as the call in flight ends: before its own delay is over.
func TestDeferredTaskWaitsForShare(t *testing.T) {
	rdb := redisClient(t)
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	src := &scripted{answer: func(_ context.Context, n int64, _ dashcache.ReportKey) ([]byte, error) {
		if n == 1 {
			started <- struct{}{}
			<-release
		}
		return []byte(`{}`), nil
	}}
	runHandler(t, rdb, handlerFor(t, rdb, src, guard.Config{Backends: map[string]guard.Backend{"": {Rate: 100}}, CustomerShare: 1}))
	first, second := key(t, "acme"), mustKey(t, "acme", "2025-02-01", "2025-02-28")
	enq := newEnqueuer(t, rdb)
	enq.Ensure(context.Background(), first)
	<-started
	enq.Ensure(context.Background(), second)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	var info *asynq.TaskInfo
	var err error
	if !wait.Until(10*time.Second, func() bool {
		info, err = insp.GetTaskInfo(jobs.QueueInteractive, second.TaskID())
		return err == nil && info.State == asynq.TaskStateRetry
	}) {
		t.Fatalf("the second task was never deferred: %+v %v", info, err)
	}
	if info.Retried != 0 {
		t.Errorf("a deferred task used up %d retries, want 0", info.Retried)
	}
	close(release)
	waitCached(t, rdb, second)
	if now := time.Now(); !now.Before(info.NextProcessAt) {
		t.Errorf("the deferred task ran at %s, not before its delay ended at %s: it was not woken", now, info.NextProcessAt)
	}
	if src.maxSeen != 1 || src.calls.Load() != 2 {
		t.Errorf("%d calls of the customer in flight at most, %d calls; want 1 and 2", src.maxSeen, src.calls.Load())
	}
}

// TestDeferralOnTheLastAttempt: a deferral on a task's last attempt puts it
// back like any deferral, not into the archive; the attempt after it is
// still the last: its failure is remembered, not retried.
func TestDeferralOnTheLastAttempt(t *testing.T) {
	rdb := redisClient(t)
	src := &scripted{answer: func(_ context.Context, n int64, _ dashcache.ReportKey) ([]byte, error) {
		if n == 1 {
			return nil, &dashcache.Deferral{Reason: dashcache.ReasonBreaker, Delay: 10 * time.Millisecond}
		}
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Status: 503}
	}}
	st, filled := subscribed(t, rdb)
	runHandler(t, rdb, handlerFor(t, rdb, src, guard.Config{}))
	k := key(t, "acme")
	// MaxRetry 1: the first attempt is the last (NewTask keeps one spare).
	if _, err := asynq.NewClientFromRedisClient(rdb).Enqueue(jobs.NewTask(context.Background(), k, jobs.QueueInteractive, dashcache.Refresh{}), asynq.MaxRetry(1)); err != nil {
		t.Fatal(err)
	}
	if f := waitFailure(t, filled, st, k); !strings.Contains(f, "HTTP 503") {
		t.Errorf("remembered failure %q", f)
	}
	waitTaskGone(t, rdb, jobs.QueueInteractive, k)
	if n := src.calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2: the deferred one and the last attempt", n)
	}
}

// TestInvalidAnswerTriedTwice: an answer that cannot be stored is asked for
// once more, then remembered as a failure like a permanent one.
func TestInvalidAnswerTriedTwice(t *testing.T) {
	rdb := redisClient(t)
	src := &scripted{answer: func(context.Context, int64, dashcache.ReportKey) ([]byte, error) {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomeInvalid, Status: 200, Err: errors.New("not valid JSON")}
	}}
	st, filled := subscribed(t, rdb)
	runHandler(t, rdb, handlerFor(t, rdb, src, guard.Config{}))
	k := key(t, "broken")
	newEnqueuer(t, rdb).Ensure(context.Background(), k)
	if f := waitFailure(t, filled, st, k); !strings.Contains(f, "invalid") {
		t.Errorf("remembered failure %q, want it to say the answer was invalid", f)
	}
	waitTaskGone(t, rdb, jobs.QueueInteractive, k)
	if n := src.calls.Load(); n != 2 {
		t.Errorf("%d BI calls for an invalid answer, want 2", n)
	}
}

// TestAdmission: a customer with CustomerPending fills outstanding is
// refused another until one ends; the breaker and the daily budget refuse
// fills too, and the budget refuses warming.
func TestAdmission(t *testing.T) {
	ctx := context.Background()
	rdb := redisClient(t)
	enq := enqueuerWith(t, rdb, guard.Config{CustomerPending: 1, DailyCalls: 2, Now: func() time.Time { return today }})
	refusal := func(err error) string {
		var r *dashcache.Refusal
		if !errors.As(err, &r) {
			return ""
		}
		if r.RetryAfter <= 0 || r.Detail == "" {
			t.Errorf("refusal %+v lacks a Retry-After or a detail", r)
		}
		return r.Reason
	}
	first, second := key(t, "acme"), mustKey(t, "acme", "2025-02-01", "2025-02-28")
	if ok, err := enq.Ensure(ctx, first); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := enq.Ensure(ctx, first); err != nil {
		t.Errorf("a reader of an outstanding report: %v", err)
	}
	if _, err := enq.Ensure(ctx, second); refusal(err) != dashcache.ReasonPending {
		t.Errorf("a second report past CustomerPending 1: %v", err)
	}
	runHandler(t, rdb, handlerFor(t, rdb, &scripted{answer: func(context.Context, int64, dashcache.ReportKey) ([]byte, error) { return []byte(`{}`), nil }}, guard.Config{}))
	waitCached(t, rdb, first)
	waitTaskGone(t, rdb, jobs.QueueInteractive, first)
	if _, err := enq.Ensure(ctx, second); err != nil {
		t.Errorf("after the first fill ended: %v", err)
	}

	st := store.New(rdb)
	for range 2 {
		st.Guards.Spend(ctx, dashcache.DayOf(today), "spender", "", 0)
	}
	if _, err := enq.Ensure(ctx, key(t, "spender")); refusal(err) != dashcache.ReasonBudget {
		t.Errorf("past the daily budget: %v", err)
	}
	if _, err := enq.Warm(ctx, key(t, "spender"), dashcache.Refresh{}); refusal(err) != dashcache.ReasonBudget {
		t.Errorf("warming past the daily budget: %v", err)
	}
	st.Guards.BreakerRecord(ctx, "", store.BreakerRule{Failures: 1, Customers: 1, Window: time.Minute, Cooldown: time.Minute}, "acme", true, time.Time{})
	if _, err := enq.Ensure(ctx, key(t, "globex")); refusal(err) != dashcache.ReasonBreaker {
		t.Errorf("while the breaker is open: %v", err)
	}
	u, _ := st.Guards.UsageOn(ctx, dashcache.DayOf(today))
	if r := u["acme"].Refused; r[dashcache.ReasonPending] != 1 {
		t.Errorf("acme's refusals %v, want one for pending", r)
	}
	if r := u["spender"].Refused; r[dashcache.ReasonBudget] != 2 {
		t.Errorf("spender's refusals %v, want two for the budget", r)
	}
}

func mustKey(t *testing.T, c, from, to string) dashcache.ReportKey {
	t.Helper()
	k, err := dashcache.ParseReportKey(c, from, to, today)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestShutdownMidCall: a worker shut down during a BI call lets the call
// finish within its grace and fills the report; a call still out after the
// grace is cut, its lock released and its task handed back without using up
// a retry or remembering a failure, and another worker fills it.
func TestShutdownMidCall(t *testing.T) {
	for _, c := range []struct {
		name        string
		call, grace time.Duration
		calls       int64
	}{
		{"within the grace", 300 * time.Millisecond, 5 * time.Second, 1},
		{"past the grace", time.Hour, 100 * time.Millisecond, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			rdb := redisClient(t)
			started := make(chan struct{}, 1)
			src := &scripted{answer: func(ctx context.Context, n int64, _ dashcache.ReportKey) ([]byte, error) {
				if n == 1 {
					started <- struct{}{}
					select {
					case <-time.After(c.call):
					case <-ctx.Done():
						return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Err: ctx.Err()}
					}
				}
				return []byte(`{}`), nil
			}}
			w := startWorker(t, rdb, handlerFor(t, rdb, src, guard.Config{}), c.grace)
			k := key(t, "acme")
			newEnqueuer(t, rdb).Ensure(context.Background(), k)
			<-started
			w.Shutdown()

			st := store.New(rdb)
			if found, _ := st.Cache.Lookup(context.Background(), k); len(found) == 1 && found[0].Failure != "" {
				t.Errorf("a shutdown was remembered as a failure: %q", found[0].Failure)
			}
			if locked, _ := st.Cache.Locked(context.Background(), k); locked {
				t.Error("the lock outlived the shutdown")
			}
			if c.calls == 2 {
				info, err := asynq.NewInspectorFromRedisClient(rdb).GetTaskInfo(jobs.QueueInteractive, k.TaskID())
				if err != nil || info.Retried != 0 || info.State == asynq.TaskStateArchived {
					t.Fatalf("the cut task: %+v %v; want it back in the queue, no retry used", info, err)
				}
				runHandler(t, rdb, handlerFor(t, rdb, src, guard.Config{}))
			}
			waitCached(t, rdb, k)
			if n := src.calls.Load(); n != c.calls {
				t.Errorf("%d BI calls, want %d", n, c.calls)
			}
		})
	}
}
