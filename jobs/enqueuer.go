package jobs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// EnqueuerConfig configures an Enqueuer.
type EnqueuerConfig struct {
	// Redis holds the queues. Required; the caller closes it.
	Redis redis.UniversalClient
	// Cache and Index are the report cache and its index. Required.
	Cache Cache
	Index Index
	// Admission admits readers' fills and refuses warming of customers
	// past their budget. Required.
	Admission Admission
	// Registerer receives dashcache_enqueues_total and the invalidation
	// counters. Default: not exported.
	Registerer prometheus.Registerer
	// Now is the time of invalidations. Default time.Now.
	Now func() time.Time
}

// Enqueuer enqueues fill tasks, each on the queue its purpose calls for, and
// counts them in dashcache_enqueues_total{result="enqueued|duplicate"}. It
// has readers' fills admitted first. It satisfies dashcache.Warmer and the
// queue the API needs.
type Enqueuer struct {
	cfg       EnqueuerConfig
	inspector *asynq.Inspector
	enqueues  *prometheus.CounterVec
	// invalidations and invalidated count Invalidate's work.
	invalidations prometheus.Counter
	invalidated   *prometheus.CounterVec

	mu       sync.Mutex
	client   *asynq.Client
	clientAt time.Time
}

// clientLife is how long an asynq client is used before a new one: see
// asynqClient.
const clientLife = time.Minute

// NewEnqueuer returns an Enqueuer for cfg, with defaults for zero fields.
func NewEnqueuer(cfg EnqueuerConfig) (*Enqueuer, error) {
	if cfg.Redis == nil || cfg.Cache == nil || cfg.Index == nil || cfg.Admission == nil {
		return nil, errors.New("jobs: EnqueuerConfig.Redis, Cache, Index and Admission are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Enqueuer{
		cfg:       cfg,
		inspector: asynq.NewInspectorFromRedisClient(cfg.Redis),
		enqueues: prom.CounterVec("dashcache_enqueues_total",
			"Fill tasks enqueued, or refused as a duplicate of a queued or running one.",
			"result", "enqueued", "duplicate"),
		invalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dashcache_invalidations_total",
			Help: "Invalidations of changed dates (POST /v1/invalidate, dashcache invalidate).",
		}),
		invalidated: prom.CounterVec("dashcache_invalidated_reports_total",
			"Reports of invalidations: matched (in the index, overlapping the dates), stale (marked stale), refreshed (read lately: refresh queued at once).",
			"result", "matched", "stale", "refreshed"),
	}
	if err := prom.Register(cfg.Registerer, e.enqueues, e.invalidations, e.invalidated); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return e, nil
}

// Warm enqueues the fill task of a report on the warming queue, refreshing it
// as r says: for the scheduler, the warm command, POST /v1/warm, and a
// reader's refresh of a stale report. enqueued is false, with no error, when
// the report's warming task is already queued or running. A customer past
// its daily budget is refused (a *dashcache.Refusal).
func (e *Enqueuer) Warm(ctx context.Context, k dashcache.ReportKey, r dashcache.Refresh) (enqueued bool, err error) {
	if err := e.cfg.Admission.CheckBudget(ctx, k.Customer); err != nil {
		return false, err
	}
	return e.enqueue(ctx, k, NewTask(ctx, k, QueueWarming, r))
}

// Ensure makes sure that a report a reader waits for is being filled: it
// has the fill admitted (or returns its *dashcache.Refusal: see
// guard.Guard.Admit), and enqueues the report's task on the interactive
// queue (enqueued is false, with no error, when the task is already there).
//
// When the report's task is there but orphaned (active in asynq while no
// worker holds the report's lock, because its worker died), Ensure enqueues a
// rescue task (ID: the task ID with "#rescue"; enqueued is then true), since
// asynq would requeue the orphan only when its lease runs out, a minute or
// two later. A rescue that was not needed costs no BI call: it goes through
// the lock and the cache check like any fill task. Readers who keep waiting
// call Ensure again every few seconds, which is how a dead worker's report is
// noticed.
func (e *Enqueuer) Ensure(ctx context.Context, k dashcache.ReportKey) (enqueued bool, err error) {
	if err := e.cfg.Admission.Admit(ctx, k); err != nil {
		return false, err
	}
	task := NewTask(ctx, k, QueueInteractive, dashcache.Refresh{})
	if enqueued, err = e.enqueue(ctx, k, task); enqueued || err != nil {
		return enqueued, err
	}
	// The usual case: a worker holds the report's lock, filling it.
	if locked, err := e.cfg.Cache.Locked(ctx, k); err != nil || locked {
		return false, err
	}
	info, err := e.inspector.GetTaskInfo(QueueInteractive, k.TaskID())
	if errors.Is(err, asynq.ErrQueueNotFound) {
		// Redis lost asynq's queue registry (a restart without persistence):
		// a new client writes it again with its enqueue.
		e.asynqClient(true)
		if enqueued, err = e.enqueue(ctx, k, task); enqueued || err != nil {
			return enqueued, err
		}
		info, err = e.inspector.GetTaskInfo(QueueInteractive, k.TaskID())
	}
	if err != nil || info.State != asynq.TaskStateActive {
		return false, nil // gone or not started yet: nothing to rescue
	}
	// Active, and only then no lock (a worker that took the task between
	// the first look at the lock and the state would hold it by now): its
	// worker died.
	if locked, err := e.cfg.Cache.Locked(ctx, k); err != nil || locked {
		return false, err
	}
	return e.enqueue(ctx, k, task, asynq.TaskID(RescueID(k)))
}

// RescueID is the task ID of a report's rescue task.
func RescueID(k dashcache.ReportKey) string { return k.TaskID() + "#rescue" }

// asynqClient returns the client to enqueue with: a new one if renew is set
// or the current one is clientLife old. asynq adds a queue to its registry
// (asynq:queues, which the inspector, the rescue, the web UI and the queue
// metrics read) only on a client's first enqueue to it; after a Redis restart
// without persistence the registry is gone, and a new client writes it again.
func (e *Enqueuer) asynqClient(renew bool) *asynq.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	if renew || e.client == nil || time.Since(e.clientAt) > clientLife {
		e.client = asynq.NewClientFromRedisClient(e.cfg.Redis) // the old one shares rdb: nothing to close
		e.clientAt = time.Now()
	}
	return e.client
}

func (e *Enqueuer) enqueue(ctx context.Context, k dashcache.ReportKey, t *asynq.Task, opts ...asynq.Option) (bool, error) {
	_, err := e.asynqClient(false).EnqueueContext(ctx, t, opts...)
	switch {
	case err == nil:
		e.enqueues.WithLabelValues("enqueued").Inc()
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		e.enqueues.WithLabelValues("duplicate").Inc()
		return false, nil
	default:
		return false, fmt.Errorf("enqueueing the fill task of %s: %w", k, err)
	}
}

// handOverWait bounds how long an invalidation waits for the API processes
// to hand their reads over.
const handOverWait = 2 * time.Second

// invalidateTimeout bounds an invalidation, which goes on when its caller
// leaves: the change is logged, and what it makes stale must be marked.
const invalidateTimeout = 30 * time.Second

// Invalidate marks stale at once every cached report of ch.Customers
// whose range overlaps the changed days: readers are served it as stale
// while one refresh runs. Those read within readWithin (on any API process:
// each is asked for its latest reads first, and the answer says how many
// did not answer within handOverWait) are refreshed now, on the warming
// queue, within the fleet's rate and each customer's share; the others on
// their next read. A customer whose daily budget is used is not
// refreshed: its readers get the stale reports until its budget allows. It
// goes on if ctx ends (within invalidateTimeout).
func (e *Enqueuer) Invalidate(ctx context.Context, ch dashcache.Changed, readWithin time.Duration) (dashcache.Invalidation, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), invalidateTimeout)
	defer cancel()
	var res dashcache.Invalidation
	defer func() {
		e.invalidated.WithLabelValues("matched").Add(float64(res.Matched))
		e.invalidated.WithLabelValues("stale").Add(float64(res.MarkedStale))
		e.invalidated.WithLabelValues("refreshed").Add(float64(res.Refreshed))
		e.invalidations.Inc()
	}()
	now := e.cfg.Now()
	// The change is logged first, so that a fill whose call began before it
	// marks its report stale (store.ChangedSince).
	if err := e.cfg.Index.RecordChange(ctx, ch, now); err != nil {
		return res, err
	}
	if readWithin > 0 {
		// Every API process hands over the reads it has not yet, so that
		// a report read anywhere a moment ago counts as read. An ask that
		// fails is no reason not to mark: those not heard from count as
		// unanswered.
		asked, answered, _ := e.cfg.Cache.HandOverReads(ctx, handOverWait)
		res.APIs, res.APIsUnanswered = asked, asked-answered
	}
	customers := ch.Customers
	if customers == nil {
		var err error
		if customers, err = e.cfg.Index.IndexedCustomers(ctx); err != nil {
			return res, err
		}
	}
	var refresh []dashcache.ReportKey
	for _, c := range customers {
		cached, err := e.cfg.Index.Cached(ctx, c, now)
		if err != nil {
			return res, err
		}
		cached = slices.DeleteFunc(cached, func(k dashcache.ReportKey) bool { return !ch.Overlaps(k) })
		res.Matched += len(cached)
		marked, err := e.cfg.Cache.MarkStale(ctx, cached, now)
		if err != nil {
			return res, err
		}
		res.MarkedStale += len(marked)
		// Those already stale are refreshed too if read: the data changed
		// under them as well (a fill that ended as the change was logged
		// marks its report stale itself: see store.ChangedSince).
		read, err := e.readAmong(ctx, cached, now, readWithin)
		if err != nil {
			return res, err
		}
		refresh = append(refresh, read...)
	}
	// A customer whose daily budget is used is skipped: its reports stay
	// stale until it is not.
	warmed := dashcache.WarmAll(ctx, e, refresh, dashcache.Refresh{}, dashcache.StopOnError)
	res.Refreshed = warmed.Enqueued + warmed.Duplicates
	if len(warmed.Errors) > 0 {
		return res, warmed.Errors[0]
	}
	return res, nil
}

// readAmong returns those of one customer's reports read within the window
// before now: none for a window of 0.
func (e *Enqueuer) readAmong(ctx context.Context, keys []dashcache.ReportKey, now time.Time, window time.Duration) ([]dashcache.ReportKey, error) {
	if window <= 0 || len(keys) == 0 {
		return nil, nil
	}
	read, err := e.cfg.Index.ReadSince(ctx, keys[0].Customer, now.Add(-window))
	if err != nil {
		return nil, err
	}
	recent := make(map[dashcache.ReportKey]bool, len(read))
	for _, k := range read {
		recent[k] = true
	}
	return slices.DeleteFunc(keys, func(k dashcache.ReportKey) bool { return !recent[k] }), nil
}
