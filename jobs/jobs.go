// Package jobs defines the asynq warm task: its type, payload and ID, how it is
// enqueued, the handler that fills a report exactly once per key, and the asynq
// server that runs it.
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

// Queues: interactive tasks (a reader is waiting) are served strictly before
// warming tasks (warm command, scheduler).
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

// Enqueuer enqueues warm tasks and counts them in
// dashcache_enqueues_total{result="enqueued|duplicate"}.
type Enqueuer struct {
	client    *asynq.Client
	inspector *asynq.Inspector
	store     *store.Store
	enqueues  *prometheus.CounterVec
}

// NewEnqueuer returns an Enqueuer on rdb (which the caller closes), measured
// into reg (nil: not exported).
func NewEnqueuer(rdb redis.UniversalClient, reg prometheus.Registerer) *Enqueuer {
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
		reg.MustRegister(e.enqueues)
	}
	return e
}

// Enqueue enqueues the warm task of a report (see NewTask). enqueued is false,
// with no error, when the same report's task is already queued or running.
func (e *Enqueuer) Enqueue(ctx context.Context, k dashcache.ReportKey, queue string, r dashcache.Refresh) (enqueued bool, err error) {
	return e.enqueue(ctx, k, NewTask(k, queue, r))
}

// Ensure is Enqueue for a reader who waits: when the report's task is already
// there but orphaned (active in asynq while no worker holds the report's lock,
// because its worker died), it enqueues a rescue task (ID: the task ID with
// "#rescue"; enqueued is then true), since asynq would requeue the orphan only
// when its lease runs out, a minute or two later. A rescue that was not needed
// costs no BI call: it goes through the lock and the cache check like any
// warm task.
func (e *Enqueuer) Ensure(ctx context.Context, k dashcache.ReportKey, queue string) (enqueued bool, err error) {
	enqueued, err = e.Enqueue(ctx, k, queue, dashcache.Refresh{})
	if enqueued || err != nil {
		return enqueued, err
	}
	info, err := e.inspector.GetTaskInfo(queue, k.TaskID())
	if err != nil || info.State != asynq.TaskStateActive {
		return false, nil // gone or not started yet: nothing to rescue
	}
	locked, err := e.store.Locked(ctx, k)
	if err != nil || locked {
		return false, err
	}
	return e.enqueue(ctx, k, NewTask(k, queue, dashcache.Refresh{}), asynq.TaskID(RescueID(k)))
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
		return false, fmt.Errorf("enqueueing %s: %w", k, err)
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
