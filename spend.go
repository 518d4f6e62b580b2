package dashcache

import (
	"context"
	"fmt"
	"time"
)

// Priority says who waits for a BI call: a reader (Interactive) or nobody
// yet (Warming). Warming is never starved: it keeps a share of the fleet's
// BI rate under any interactive load.
type Priority int

const (
	// Interactive is a fill that a reader waits for.
	Interactive Priority = iota
	// Warming is a fill ahead of readers: a plan, a warm command, a refresh.
	Warming
)

type priorityKey struct{}

// WithPriority returns ctx carrying the priority of the BI call made under it.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityOf returns the priority ctx carries; Interactive if none.
func PriorityOf(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}

// Why a fill or a BI call is refused or deferred, as in Refusal.Reason,
// Deferral.Reason and the metrics' reason labels.
const (
	// ReasonPending: the customer has too many fills outstanding.
	ReasonPending = "pending"
	// ReasonBudget: the customer has used its daily BI calls.
	ReasonBudget = "budget"
	// ReasonBreaker: the BI platform keeps failing for everyone; the fleet
	// stopped calling it for a cool-down.
	ReasonBreaker = "breaker"
	// ReasonShare: the customer has its fleet-wide share of BI calls in
	// flight.
	ReasonShare = "customer_share"
	// ReasonShutdown: the worker is shutting down; another one fills it.
	ReasonShutdown = "shutdown"
)

// RefusalReasons are the reasons a fill is refused (Refusal.Reason).
var RefusalReasons = []string{ReasonPending, ReasonBudget, ReasonBreaker}

// Refusal is a fill that dashcache will not start now. Readers get it as
// 429 (503 for ReasonBreaker) with Retry-After and Detail; warming skips the
// report and says why.
type Refusal struct {
	Reason     string        // ReasonPending, ReasonBudget or ReasonBreaker
	RetryAfter time.Duration // when asking again may succeed
	Detail     string        // what happened and what to do, for a person
}

func (r *Refusal) Error() string { return r.Detail }

// Deferral is a BI call that must wait rather than fail: its customer has
// its share of the platform in flight, or the breaker is open. The task
// waits Delay (or until woken) without using up a retry and without holding
// a worker slot.
type Deferral struct {
	Reason string // ReasonShare, ReasonBreaker or ReasonShutdown
	Delay  time.Duration
}

func (d *Deferral) Error() string {
	return fmt.Sprintf("BI call deferred (%s) for %s", d.Reason, d.Delay)
}

// BudgetRefusal is the refusal of a fill of customer, whose daily budget of
// BI calls is used up at now; the budget resets at the next midnight in now's
// location.
func BudgetRefusal(customer string, budget int, now time.Time) *Refusal {
	y, m, d := now.Date()
	reset := time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
	return &Refusal{
		Reason:     ReasonBudget,
		RetryAfter: reset.Sub(now),
		Detail: fmt.Sprintf("customer %s has used its %d BI calls for today (DASHCACHE_CUSTOMER_DAILY_CALLS); "+
			"cached reports are still served, and the budget resets at %s", customer, budget, reset.Format(time.RFC3339)),
	}
}
