package dashcache

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ReportSource answers a report query: the BI platform, or its simulator.
// Query returns the report as raw JSON, stored and served verbatim. A failure
// is, or wraps, a *ProviderError.
type ReportSource interface {
	Query(ctx context.Context, key ReportKey) ([]byte, error)
}

// ProviderOutcome classifies a BI call.
type ProviderOutcome string

// The outcomes of a BI call, as in the metric label
// dashcache_provider_calls_total{outcome}.
const (
	OutcomeOK          ProviderOutcome = "ok"
	OutcomeRateLimited ProviderOutcome = "rate_limited"
	OutcomeTransient   ProviderOutcome = "transient"
	OutcomePermanent   ProviderOutcome = "permanent"
	// OutcomeInvalid is an answer that cannot be stored: not JSON, not
	// UTF-8, or too large. The same query is likely to get the same answer,
	// so it is tried again once, then treated as permanent.
	OutcomeInvalid ProviderOutcome = "invalid"
)

// ProviderError is a failed BI call. Outcome says what to do next: wait
// RetryAfter (rate limited), retry with backoff (transient), give up on this
// key for a while (permanent), or try once more before that (invalid).
type ProviderError struct {
	Outcome    ProviderOutcome
	Status     int           // HTTP status, 0 when no response arrived
	Code       string        // the back end's own error code (a SQLSTATE, say), if any
	RetryAfter time.Duration // from Retry-After on 429, else 0
	// Slow is set on a failure that came after the call had run past its
	// back end's usual latency (a timeout, or a cut): while the back end
	// answers other calls, the breaker takes it for a slow query, not for
	// a platform that is down.
	Slow bool
	Err  error // the cause, for logs
}

func (e *ProviderError) Error() string {
	msg := fmt.Sprintf("BI platform: %s", e.Outcome)
	if e.Status != 0 {
		msg += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Code != "" {
		msg += fmt.Sprintf(" (code %s)", e.Code)
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *ProviderError) Unwrap() error { return e.Err }

// patientKey marks a context for a BI call that is given its whole
// timeout.
type patientKey struct{}

// Patient returns ctx marked for a BI call that must be given its whole
// timeout: a breaker's probe, or a fill's last attempt. A worker does not
// cut it for its back end's usual latency, so that a back end (or a report)
// slower than it used to be is still answered, and its latency learned
// again.
func Patient(ctx context.Context) context.Context { return context.WithValue(ctx, patientKey{}, true) }

// IsPatient reports whether ctx is marked by Patient.
func IsPatient(ctx context.Context) bool { return ctx.Value(patientKey{}) != nil }

// ErrSlowLaneFull is the cause of a call that a worker cut, not the
// platform: it ran past its back end's usual latency while the worker's
// slow lane was full. It says nothing of the platform: the breaker does not
// count it.
var ErrSlowLaneFull = errors.New("ran past its back end's usual latency while the worker's slow lane was full")

// Outcome returns the outcome of a BI call that returned err: OutcomeOK for nil,
// the ProviderError's outcome, or OutcomeTransient for any other error.
func Outcome(err error) ProviderOutcome {
	if err == nil {
		return OutcomeOK
	}
	var pe *ProviderError
	if errors.As(err, &pe) {
		return pe.Outcome
	}
	return OutcomeTransient
}
