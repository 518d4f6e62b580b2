// Package jobs is dashcache's queue: the asynq fill task (type, payload, ID,
// and which queue it goes to), the Enqueuer that puts it there for readers
// and for warming, the handler that fills a report, and the asynq server that
// runs it.
//
// What is guaranteed: at most one fill of a report runs at a time, across the
// fleet (the task ID dedupes the queue, the handler works under the report's
// owner-token lock, and a fill is written only while that lock is held); a
// fill task finds a report that is already good enough and makes no BI call.
// What is not: exactly once. A worker that dies mid-call, or loses its lock,
// leaves a paid call unwritten, and the report is filled again.
package jobs

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/tracing"
	"github.com/hibiken/asynq"
)

// TypeFill is the asynq task type that fills one report, for a reader or
// ahead of readers. Its payload is the report's canonical key. Its value is
// the type's first name, from when every fill was called a warm: processes
// of both versions share the queues while a deployment rolls, and a worker
// that knew no handler for a new name would fail those tasks until asynq
// archived them under their reports' IDs.
const TypeFill = "report:warm"

// Queues: interactive tasks (a reader is waiting; Enqueuer.Ensure) and
// warming tasks (refreshes, warm command, scheduler; Enqueuer.Warm). Workers
// take an interactive task four times as often as a warming one when both
// wait, so warming is never starved (see NewWorker).
const (
	QueueInteractive = "interactive"
	QueueWarming     = "warming"
)

const (
	// MaxRetry is how often a failed fill is retried. The last failure is
	// remembered (negative cache) instead of archived, so the task ID is free
	// again. A task waiting for its customer's share or for the breaker
	// (dashcache.Deferral) does not use up a retry.
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

// NewTask returns the fill task of a report for queue. Its ID is derived from the
// canonical key, so a second task for the same report is refused while the first
// is pending or running. r says whether a cached report is refreshed. Its
// headers carry the trace context of ctx's span, if any.
//
// asynq archives a task that errs once its retries are used, even for an
// error that does not count as a failure; so the task allows one retry more
// than MaxRetry, which only a deferral (on the last attempt) can take: the
// handler ends the last attempt itself.
func NewTask(ctx context.Context, k dashcache.ReportKey, queue string, r dashcache.Refresh) *asynq.Task {
	headers := map[string]string{}
	tracing.Inject(ctx, headers) // the fill's span links to the trace that asked for it
	if r.Force {
		headers[forceHeader] = "true"
	}
	if !r.Seen.IsZero() {
		headers[seenHeader] = strconv.FormatInt(r.Seen.UnixMilli(), 10)
	}
	return asynq.NewTaskWithHeaders(TypeFill, []byte(k.String()), headers,
		asynq.TaskID(k.TaskID()),
		asynq.Queue(queue),
		asynq.MaxRetry(MaxRetry+1),
		asynq.Timeout(TaskTimeout),
	)
}

// RetryDelay is the asynq RetryDelayFunc for fill tasks: a deferred call
// waits its delay (and up to a quarter more, so that deferred tasks do not
// all come back at once); a rate-limited call waits the Retry-After the BI
// platform asked for; anything else backs off exponentially (1 s, 2 s, 4 s,
// ... up to a minute) with full jitter on its upper half.
func RetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	var d *dashcache.Deferral
	if errors.As(err, &d) {
		return d.Delay + rand.N(d.Delay/4+1)
	}
	var pe *dashcache.ProviderError
	if errors.As(err, &pe) && pe.RetryAfter > 0 {
		return pe.RetryAfter
	}
	backoff := min(time.Second<<min(n, 10), maxBackoff)
	return backoff/2 + rand.N(backoff/2+1)
}

// refreshOf reads the dashcache.Refresh that NewTask put in a task's headers.
func refreshOf(t *asynq.Task) dashcache.Refresh {
	r := dashcache.Refresh{Force: t.Headers()[forceHeader] == "true"}
	if ms, err := strconv.ParseInt(t.Headers()[seenHeader], 10, 64); err == nil {
		r.Seen = time.UnixMilli(ms)
	}
	return r
}
