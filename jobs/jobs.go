// Package jobs is dashcache's queue: the asynq warm task (type, payload, ID,
// and which queue it goes to), the Enqueuer that puts it there for readers
// and for warming, the handler that fills a report, and the asynq server that
// runs it.
//
// What is guaranteed: at most one fill of a report runs at a time, across the
// fleet (the task ID dedupes the queue, the handler works under the report's
// owner-token lock, and a fill is written only while that lock is held); a
// warm task finds a report that is already good enough and makes no BI call.
// What is not: exactly once. A worker that dies mid-call, or loses its lock,
// leaves a paid call unwritten, and the report is filled again.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// TypeWarm is the asynq task type that fills one report. Its payload is the
// report's canonical key.
const TypeWarm = "report:warm"

// Queues: interactive tasks (a reader is waiting; Enqueuer.Ensure) are served
// strictly before warming tasks (refreshes, warm command, scheduler;
// Enqueuer.Warm).
const (
	QueueInteractive = "interactive"
	QueueWarming     = "warming"
)

const (
	// MaxRetry is how often a failed fill is retried. The last failure is
	// remembered (negative cache) instead of archived, so the task ID is free
	// again.
	MaxRetry = 5
	// TaskTimeout bounds one attempt, including waits for the fleet-wide rate
	// limit; the handler stops its BI call taskMargin before it.
	TaskTimeout = 10 * time.Minute
	taskMargin  = 10 * time.Second
	// maxBackoff caps the delay between retries of a transient failure.
	maxBackoff = time.Minute
)

// Task headers that carry a dashcache.Refresh: "force" is "true" to refresh a
// fresh report; "seen" the computed-at (Unix ms) of the report a reader saw.
const (
	forceHeader = "force"
	seenHeader  = "seen"
)

// NewTask returns the warm task of a report for queue. Its ID is derived from the
// canonical key, so a second task for the same report is refused while the first
// is pending or running. r says whether a cached report is refreshed.
func NewTask(k dashcache.ReportKey, queue string, r dashcache.Refresh) *asynq.Task {
	headers := map[string]string{}
	if r.Force {
		headers[forceHeader] = "true"
	}
	if !r.Seen.IsZero() {
		headers[seenHeader] = strconv.FormatInt(r.Seen.UnixMilli(), 10)
	}
	return asynq.NewTaskWithHeaders(TypeWarm, []byte(k.String()), headers,
		asynq.TaskID(k.TaskID()),
		asynq.Queue(queue),
		asynq.MaxRetry(MaxRetry),
		asynq.Timeout(TaskTimeout),
	)
}

// Enqueuer enqueues warm tasks, each on the queue its purpose calls for, and
// counts them in dashcache_enqueues_total{result="enqueued|duplicate"}. It
// satisfies dashcache.Warmer and the queue the API needs.
type Enqueuer struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	store     *store.Store
	enqueues  *prometheus.CounterVec
}

// NewEnqueuer returns an Enqueuer on rdb (which the caller closes), measured
// into reg (nil: not exported).
func NewEnqueuer(rdb redis.UniversalClient, reg prometheus.Registerer) (*Enqueuer, error) {
	e := &Enqueuer{
		client:    asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb),
		store:     store.New(rdb),
		enqueues: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dashcache_enqueues_total",
			Help: "Warm tasks enqueued, or refused as a duplicate of a queued or running one.",
		}, []string{"result"}),
	}
	e.enqueues.WithLabelValues("enqueued")
	e.enqueues.WithLabelValues("duplicate")
	if reg != nil {
		if err := reg.Register(e.enqueues); err != nil {
			return nil, fmt.Errorf("jobs: registering metrics: %w", err)
		}
	}
	return e, nil
}

// Warm enqueues the warm task of a report on the warming queue, refreshing it
// as r says: for the scheduler, the warm command, POST /v1/warm, and a
// reader's refresh of a stale report. enqueued is false, with no error, when
// the report's warming task is already queued or running.
func (e *Enqueuer) Warm(ctx context.Context, k dashcache.ReportKey, r dashcache.Refresh) (enqueued bool, err error) {
	return e.enqueue(ctx, k, NewTask(k, QueueWarming, r))
}

// Ensure makes sure that a report a reader waits for is being filled: it
// enqueues the report's task on the interactive queue (enqueued is false,
// with no error, when the task is already there). When that task is there but
// orphaned (active in asynq while no worker holds the report's lock, because
// its worker died), it enqueues a rescue task (ID: the task ID with
// "#rescue"; enqueued is then true), since asynq would requeue the orphan
// only when its lease runs out, a minute or two later. A rescue that was not
// needed costs no BI call: it goes through the lock and the cache check like
// any warm task. Readers who keep waiting call Ensure again every few
// seconds, which is how a dead worker's report is noticed.
func (e *Enqueuer) Ensure(ctx context.Context, k dashcache.ReportKey) (enqueued bool, err error) {
	task := NewTask(k, QueueInteractive, dashcache.Refresh{})
	enqueued, err = e.enqueue(ctx, k, task)
	if enqueued || err != nil {
		return enqueued, err
	}
	info, err := e.inspector.GetTaskInfo(QueueInteractive, k.TaskID())
	if err != nil || info.State != asynq.TaskStateActive {
		return false, nil // gone or not started yet: nothing to rescue
	}
	locked, err := e.store.Locked(ctx, k)
	if err != nil || locked {
		return false, err
	}
	return e.enqueue(ctx, k, task, asynq.TaskID(RescueID(k)))
}

// RescueID is the task ID of a report's rescue task.
func RescueID(k dashcache.ReportKey) string { return k.TaskID() + "#rescue" }

func (e *Enqueuer) enqueue(ctx context.Context, k dashcache.ReportKey, t *asynq.Task, opts ...asynq.Option) (bool, error) {
	_, err := e.client.EnqueueContext(ctx, t, opts...)
	switch {
	case err == nil:
		e.enqueues.WithLabelValues("enqueued").Inc()
		return true, nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		e.enqueues.WithLabelValues("duplicate").Inc()
		return false, nil
	default:
		return false, fmt.Errorf("enqueueing the warm task of %s: %w", k, err)
	}
}

// RetryDelay is the asynq RetryDelayFunc for warm tasks: a rate-limited call
// waits the Retry-After the BI platform asked for; anything else backs off
// exponentially (1 s, 2 s, 4 s, ... up to a minute) with full jitter on its
// upper half.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var pe *dashcache.ProviderError
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return pe.RetryAfter
	}
	d := min(time.Second<<min(n, 10), maxBackoff)
	return d/2 + rand.N(d/2+1)
}

// refreshOf reads the dashcache.Refresh that NewTask put in a task's headers.
func refreshOf(t *asynq.Task) dashcache.Refresh {
	r := dashcache.Refresh{Force: t.Headers()[forceHeader] == "true"}
	if ms, err := strconv.ParseInt(t.Headers()[seenHeader], 10, 64); err == nil {
		r.Seen = time.UnixMilli(ms)
	}
	return r
}
