package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/dashcache/dashcache/internal/tracing"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// HandlerConfig configures the fill task handler.
type HandlerConfig struct {
	Cache  Cache                  // required
	Index  Index                  // required
	Guard  Guard                  // required: every BI call goes through it
	Source dashcache.ReportSource // required: the BI platform
	Log    zerolog.Logger         // default: no logs
	Now    func() time.Time       // default time.Now
	// Reports are the reports this worker fills; a task of another (from a
	// process with another catalogue, as in a rolling deploy) fails without
	// a BI call, as a transient failure: retried, in case another worker
	// serves it. Default: the default report alone.
	Reports dashcache.Served
	// Freshness says how long each report stays fresh (a catalogue's
	// overrides). Default: OpenTTL and ClosedTTL for every report.
	Freshness func(report string) dashcache.Freshness
	Zone      *time.Location // where "today" is; default UTC
	// LockTTL is the lock's lifetime without renewal: how soon another worker
	// can take over from one that died. Default 15 s.
	LockTTL time.Duration
	// FailureTTL is how long a failed fill is remembered (readers get 502 and
	// no BI call is made). Default 30 s.
	FailureTTL time.Duration
	// Inspector, when set, wakes a customer's deferred task as soon as one of
	// its BI calls ends; without it, deferred tasks wait out their delay.
	Inspector *asynq.Inspector
	// Registerer receives dashcache_lock_total{result} and
	// dashcache_deferrals_total{reason}. Default: not exported.
	Registerer prometheus.Registerer
	// Tracing, when set, traces each fill: a span of its own, linked to
	// the trace that enqueued it, with the lock, the guard's waits, the BI
	// call and the fenced write as children. Default: none.
	Tracing trace.TracerProvider
	// Slots is how many tasks the worker runs at once (its concurrency):
	// half of them at most may hold calls that run past their back end's
	// usual latency (the slow lane). Default DefaultConcurrency.
	Slots int
	// SlowFloor is the least a call runs before it is cut for its back
	// end's latency, and the usual latency before enough calls are seen.
	// Default DefaultSlowFloor.
	SlowFloor time.Duration
}

// Handler fills reports: it is the asynq handler of TypeFill.
type Handler struct {
	cfg       HandlerConfig
	tracer    trace.Tracer
	lanes     *lanes
	cuts      *prometheus.CounterVec
	locks     *prometheus.CounterVec
	deferrals *prometheus.CounterVec
	// draining is cancelled, with cause errShutdown, when the worker's
	// shutdown grace ends: it cuts the BI calls still out.
	draining context.Context
	drain    context.CancelCauseFunc
}

// errShutdown cuts a fill whose worker is shutting down.
var errShutdown = errors.New("jobs: the worker is shutting down")

// NewHandler returns a fill task handler.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if cfg.Cache == nil || cfg.Index == nil || cfg.Guard == nil || cfg.Source == nil {
		return nil, errors.New("jobs: HandlerConfig needs Cache, Index, Guard and Source")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Freshness == nil {
		cfg.Freshness = func(string) dashcache.Freshness { return dashcache.Freshness{} }
	}
	if cfg.Zone == nil {
		cfg.Zone = time.UTC
	}
	cfg.LockTTL = cmp.Or(cfg.LockTTL, 15*time.Second)
	cfg.FailureTTL = cmp.Or(cfg.FailureTTL, 30*time.Second)
	cfg.Log = cfg.Log.With().Str("component", "worker").Logger()
	h := &Handler{
		cfg:    cfg,
		tracer: tracing.Tracer(cfg.Tracing, "jobs"),
		lanes:  newLanes(cmp.Or(cfg.Slots, DefaultConcurrency), cmp.Or(cfg.SlowFloor, DefaultSlowFloor), cmp.Or(cfg.Guard.CallTimeout(), time.Minute)),
		locks: prom.CounterVec("dashcache_lock_total",
			"Fill locks: acquired, contended (another worker was filling), lost (expired or taken over before the write).",
			"result", "acquired", "contended", "lost"),
		deferrals: prom.CounterVec("dashcache_deferrals_total",
			"Fills put back to wait without using a retry: customer_share (the customer had its share of BI calls in flight), breaker (the fleet stopped calling a failing BI platform), shutdown (the worker stopped during the call), slow_lane (the call ran slow while the worker's slow lane was full).",
			"reason", dashcache.ReasonShare, dashcache.ReasonBreaker, dashcache.ReasonShutdown, dashcache.ReasonSlowLane),
		cuts: prom.CounterVec("dashcache_slow_cuts_total",
			"BI calls this worker cut: latency (past 3x its back end's p99: a transient failure, retried), lane_full (slow while the slow lane was full: deferred).",
			"reason", "latency", "lane_full"),
	}
	h.draining, h.drain = context.WithCancelCause(context.Background())
	if err := prom.Register(cfg.Registerer, h.locks, h.deferrals, h.cuts); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	return h, nil
}

// ProcessTask fills one report unless the cached one is still good for the
// task (see dashcache.Refresh) or another worker is filling it. A fill that
// must wait (dashcache.Deferral) goes back to the queue without using up a
// retry. The last attempt never fails: an archived task would block the
// report's task ID for 90 days, so it logs and ends instead, and the next
// reader or plan enqueues the report afresh. When a reader's task ends, its
// fill no longer counts against the customer's outstanding fills.
func (h *Handler) ProcessTask(ctx context.Context, t *asynq.Task) error {
	k, err := dashcache.ParseCanonical(string(t.Payload()))
	if err != nil {
		// Not a report's task ID: archive it for an operator to look at.
		return fmt.Errorf("fill task payload: %w: %w", err, asynq.SkipRetry)
	}
	queue, _ := asynq.GetQueueName(ctx)
	// Its own trace, linked to the one that enqueued it: one fill serves
	// readers of many traces (each links to the fill it was woken by).
	ctx, span := h.tracer.Start(ctx, "fill", trace.WithNewRoot(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.Link{SpanContext: tracing.Extract(t.Headers())}),
		trace.WithAttributes(attribute.String("dashcache.key", k.String()), attribute.String("dashcache.report", k.Report),
			attribute.String("dashcache.customer", k.Customer), attribute.String("messaging.destination.name", queue)))
	defer span.End()
	log := tracing.Log(ctx, h.cfg.Log.With().Str("key", k.String()).Logger())
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	a := attempt{queue: queue, retried: retried, final: retried >= maxRetry-1}
	err = h.fill(ctx, log, k, refreshOf(t), a)
	var d *dashcache.Deferral
	switch {
	case errors.As(err, &d):
		h.deferrals.WithLabelValues(d.Reason).Inc()
		log.Debug().Str("reason", d.Reason).Dur("delay", d.Delay).Msg("BI call deferred")
		return err
	case err != nil && a.final:
		log.Error().Err(err).Int("attempts", retried+1).Msg("giving up on this report")
		err = nil
	}
	if err == nil && queue == QueueInteractive {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := h.cfg.Guard.FillEnded(dctx, k); err != nil {
			log.Warn().Err(err).Msg("ending the count of an outstanding fill") // it ends by itself later
		}
	}
	return err
}

// attempt is what fill needs to know of the task's attempt.
type attempt struct {
	queue   string
	retried int  // failed attempts before this one
	final   bool // the last attempt: a failure is remembered, not retried
}

// fill locks the report, checks the cache again, calls the BI platform while
// renewing the lock, and writes the report fenced by the lock, which wakes its
// readers.
func (h *Handler) fill(ctx context.Context, log zerolog.Logger, k dashcache.ReportKey, refresh dashcache.Refresh, a attempt) (err error) {
	lctx, span := h.tracer.Start(ctx, "lock")
	lock, err := h.cfg.Cache.Obtain(lctx, k, h.cfg.LockTTL)
	endSpan(span, err)
	if errors.Is(err, store.ErrLockContended) {
		h.locks.WithLabelValues("contended").Inc()
		log.Debug().Msg("another worker is filling this report")
		return nil
	}
	if err != nil {
		return err
	}
	h.locks.WithLabelValues("acquired").Inc()
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := lock.Release(rctx); err != nil {
			log.Warn().Err(err).Msg("releasing lock")
		}
	}()
	held, stop := lock.Hold(ctx)
	defer stop()
	defer func() {
		if errors.Is(err, store.ErrLockNotHeld) || errors.Is(context.Cause(held), store.ErrLockNotHeld) {
			h.locks.WithLabelValues("lost").Inc()
		}
	}()

	cached, err := h.cfg.Cache.Get(held, k)
	if err != nil {
		return err
	}
	if current(cached, refresh, h.cfg.Now()) {
		log.Debug().Msg("already cached")
		return nil
	}
	if err := h.cfg.Reports.Check(k.Report); err != nil {
		// A worker of another catalogue (a rolling deploy that adds the
		// report) may serve it: retried, and remembered as a failure on the
		// last attempt only. Not charged to any back end's rate or breaker.
		return h.failed(ctx, log, lock, k, &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Err: err}, a)
	}

	callCtx := held
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithDeadline(held, deadline.Add(-taskMargin))
		defer cancel()
	}
	callCtx, cut := context.WithCancelCause(callCtx)
	defer cut(nil)
	defer context.AfterFunc(h.draining, func() { cut(context.Cause(h.draining)) })()
	start := h.cfg.Now()
	gctx, guardSpan := h.tracer.Start(callCtx, "guard") // its time outside the BI call is the guard's waits
	if a.final {
		// Not cut for the back end's latency: a report slower than the
		// back end's others still gets one try of the whole timeout.
		gctx = dashcache.Patient(gctx)
	}
	backend := h.cfg.Guard.Backend(k.Report)
	fetch, part := h.monthFetch(k)
	var took time.Duration
	data, err := h.cfg.Guard.Call(gctx, k, a.queue == QueueWarming, func(ctx context.Context) (data []byte, err error) {
		ctx, span := h.tracer.Start(ctx, "bi call", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("dashcache.backend", cmp.Or(backend, "default")), attribute.String("dashcache.report", k.Report)))
		data, took, err = h.lanes.run(ctx, backend, func(ctx context.Context) ([]byte, error) { return h.cfg.Source.Query(ctx, fetch) })
		endSpan(span, err)
		return data, err
	})
	endSpan(guardSpan, err)
	now := h.cfg.Now()
	switch {
	case err == nil:
		h.learn(ctx, log, backend, took)
	case errors.Is(err, dashcache.ErrSlowLaneFull):
		// Cut by this worker, not failed by the platform: it waits for a
		// place without using a retry.
		h.cuts.WithLabelValues("lane_full").Inc()
		err = &dashcache.Deferral{Reason: dashcache.ReasonSlowLane, Delay: slowLaneDelay}
	case errors.Is(err, errCut):
		h.cuts.WithLabelValues("latency").Inc()
	}
	if err != nil && errors.Is(context.Cause(callCtx), errShutdown) {
		// Not a failure of the BI platform: another worker fills it.
		return &dashcache.Deferral{Reason: dashcache.ReasonShutdown}
	}
	var d *dashcache.Deferral
	if errors.As(err, &d) {
		if d.Reason == dashcache.ReasonShare {
			h.waitForShare(ctx, log, k.Customer, a.queue)
		}
		return err
	}
	// The call is over, and with it the customer's slot: a task of the
	// customer that waits for one can go.
	h.wakeDeferred(ctx, log, k.Customer)
	var refusal *dashcache.Refusal
	if errors.As(err, &refusal) {
		log.Warn().Str("reason", refusal.Reason).Msg(refusal.Detail)
		return nil // nothing to retry today; readers are refused before they enqueue
	}
	log = log.With().Dur("provider_ms", now.Sub(start)).Logger()
	if err == nil && part != nil {
		if cerr := part.Check(data); cerr != nil {
			err = &dashcache.ProviderError{Outcome: dashcache.OutcomeInvalid, Err: cerr}
		}
	}
	if err != nil {
		return h.failed(ctx, log, lock, k, err, a)
	}
	ttl := h.cfg.Freshness(k.Report).TTL(k, now.In(h.cfg.Zone))
	if part != nil {
		ttl = monthTTL(k, ttl, now.In(h.cfg.Zone))
	}
	// The write's notification carries held's span, the fill's: the
	// readers it wakes link to the fill.
	_, write := h.tracer.Start(held, "fenced write")
	err = lock.Fill(held, store.NewEntry(fetch, data, now, now.Sub(start), ttl), ttl+dashcache.StaleFor)
	endSpan(write, err)
	if err != nil {
		return fmt.Errorf("storing report %s: %w", k, err)
	}
	log.Info().Int("bytes", len(data)).Msg("report filled")
	// The entry is written: the index must follow even if the lock (held)
	// is lost now.
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	h.indexFill(ictx, log, k, start, now, ttl)
	return nil
}

// monthFetch returns what the BI platform is asked for to fill k, and k's
// partitioning (nil: none): k itself, but for a month of a partitioned
// report, whose days are asked up to today only (its entry says so: a
// read for later days refills it).
func (h *Handler) monthFetch(k dashcache.ReportKey) (dashcache.ReportKey, *dashcache.Partition) {
	part := h.cfg.Reports.Partition(k.Report)
	if part == nil || !dashcache.IsMonth(k) {
		return k, nil
	}
	k.To = min(k.To, dashcache.DayOf(h.cfg.Now().In(h.cfg.Zone)))
	return k, part
}

// monthTTL is how long month k of a partitioned report, filled at now (in
// the service's zone), stays fresh, given its report's freshness ttl. An
// open month's answer holds its days up to today only: fresh no later than
// midnight, when a read may ask for a day it lacks. A closed month is
// fresh for ttl less up to half of it, by its key: the months a backfill
// filled together do not all come due on the same night.
func monthTTL(k dashcache.ReportKey, ttl time.Duration, now time.Time) time.Duration {
	if k.Closed(now) {
		h := fnv.New64a()
		h.Write([]byte(k.String()))
		return ttl - time.Duration(float64(ttl/2)*float64(h.Sum64())/math.MaxUint64)
	}
	y, m, d := now.Date()
	return min(ttl, time.Date(y, m, d+1, 0, 0, 0, 0, now.Location()).Sub(now))
}

// indexFill indexes a report just filled, from a call that began at start,
// and then marks it stale if its data changed since start: the answer may
// predate the change. In this order (write, index, check) no invalidation
// is missed: one logged after the check finds the report in the index.
// Failures are logged: the report is served; an invalidation may miss it.
func (h *Handler) indexFill(ctx context.Context, log zerolog.Logger, k dashcache.ReportKey, start, now time.Time, ttl time.Duration) {
	err := h.cfg.Index.IndexFill(ctx, k, now, now.Add(ttl+dashcache.StaleFor))
	changed := false
	if err == nil {
		changed, err = h.cfg.Index.ChangedSince(ctx, k, start)
	}
	if err == nil && changed {
		log.Info().Msg("the data changed during the call; the report is marked stale")
		_, err = h.cfg.Cache.MarkStale(ctx, []dashcache.ReportKey{k}, now)
	}
	if err != nil {
		log.Warn().Err(err).Msg("indexing the report; an invalidation may miss it until its next fill")
	}
}

// current reports whether a cached entry needs no refresh for r at now.
func current(cached string, r dashcache.Refresh, now time.Time) bool {
	if cached == "" || r.Force {
		return false
	}
	e, err := store.ParseEntry(cached)
	if err == nil {
		_, err = e.JSON() // a compressed body that does not decompress
	}
	switch {
	case err != nil:
		return false // corrupt: replace it
	case !r.Seen.IsZero():
		return e.ComputedAt.After(r.Seen)
	default:
		return e.Fresh(now)
	}
}

// failed handles a failed BI call: a rate-limited or transient failure is
// retried by asynq, and so is an invalid answer once; a permanent one, an
// invalid answer again, or the last attempt's failure is remembered for
// FailureTTL and announced to readers, and the task ends without being
// archived.
func (h *Handler) failed(ctx context.Context, log zerolog.Logger, lock *store.Lock, k dashcache.ReportKey, err error, a attempt) error {
	outcome := dashcache.Outcome(err)
	permanent := outcome == dashcache.OutcomePermanent || outcome == dashcache.OutcomeInvalid && a.retried >= 1
	if !permanent && !a.final {
		log.Warn().Err(err).Msg("BI call failed; will retry")
		return err
	}
	log.Error().Err(err).Msg("BI call failed; remembering the failure")
	detail := fmt.Sprintf("the BI platform failed for this report (%s", outcome)
	if k.Report != "" {
		detail = fmt.Sprintf("the back end of report %s failed (%s", k.Report, outcome)
	}
	var pe *dashcache.ProviderError
	if errors.As(err, &pe) && pe.Status != 0 {
		detail += fmt.Sprintf(", HTTP %d", pe.Status)
	}
	if pe != nil && pe.Code != "" {
		detail += ", code " + pe.Code
	}
	detail += fmt.Sprintf("); try again in %s", h.cfg.FailureTTL)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if werr := lock.RememberFailure(wctx, detail, h.cfg.FailureTTL); werr != nil {
		return fmt.Errorf("remembering failure of the BI call (%w): %w", err, werr)
	}
	return nil
}

// waitForShare records that the task runs again as soon as one of its
// customer's BI calls ends (see wakeDeferred), rather than after its delay.
func (h *Handler) waitForShare(ctx context.Context, log zerolog.Logger, customer, queue string) {
	id, _ := asynq.GetTaskID(ctx)
	if h.cfg.Inspector == nil || id == "" {
		return
	}
	if err := h.cfg.Guard.WaitForShare(ctx, customer, queue+" "+id); err != nil {
		log.Warn().Err(err).Msg("recording a deferred task") // it runs after its delay
	}
}

// wakeDeferred runs now the task of the customer that has waited longest for
// a slot of its share. A task that is not waiting any more (run after its
// delay, or still being put back) is passed over.
func (h *Handler) wakeDeferred(ctx context.Context, log zerolog.Logger, customer string) {
	if h.cfg.Inspector == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for range 3 {
		task, err := h.cfg.Guard.NextWaiting(ctx, customer)
		if err != nil {
			log.Warn().Err(err).Msg("waking a deferred task")
			return
		}
		if task == "" {
			return
		}
		queue, id, _ := strings.Cut(task, " ")
		if h.cfg.Inspector.RunTask(queue, id) == nil {
			return
		}
	}
}

// drainAfter cuts, after grace, the BI calls still out: their tasks go back
// to the queue.
func (h *Handler) drainAfter(grace time.Duration) {
	time.AfterFunc(grace, func() { h.drain(errShutdown) })
}

// endSpan ends a span of the fill, marked as failed with err.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// learn records a successful call of backend that took d, and tells the
// fleet the back end's latency every so often.
func (h *Handler) learn(ctx context.Context, log zerolog.Logger, backend string, d time.Duration) {
	now := h.cfg.Now()
	report, p50, p99, calls := h.lanes.succeeded(backend, d, now)
	if !report {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := h.cfg.Guard.ReportLatency(rctx, backend, store.Latency{P50: p50, P99: p99, Calls: calls, At: now}); err != nil {
		log.Debug().Err(err).Msg("reporting the back end's latency") // the next report may get through
	}
}
