package dashcache

import (
	"fmt"
	"time"
)

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
	// ReasonSlowLane: the call ran past its back end's usual latency while
	// the worker's slow lane was full; it was cut, and runs again.
	ReasonSlowLane = "slow_lane"
)

// RefusalReasons are the reasons a fill is refused (Refusal.Reason).
var RefusalReasons = []string{ReasonPending, ReasonBudget, ReasonBreaker}

// Refusal is a fill that dashcache will not start now (package guard says
// when). Readers get it as 429 (503 for ReasonBreaker) with Retry-After and
// Detail; warming skips the report and says why.
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
	Reason string // ReasonShare, ReasonBreaker, ReasonShutdown or ReasonSlowLane
	Delay  time.Duration
}

func (d *Deferral) Error() string {
	return fmt.Sprintf("BI call deferred (%s) for %s", d.Reason, d.Delay)
}

// Usage is every customer's BI calls on a day and the fills refused: what
// GET /v1/usage shows.
type Usage struct {
	Day        Day
	Zone       *time.Location
	DailyCalls int // the budget; 0: none
	Customers  map[string]CustomerUsage
}

// CustomerUsage is one customer's BI calls on a day and the fills refused,
// by reason (RefusalReasons).
type CustomerUsage struct {
	Calls   int64
	Reports map[string]int64 // the calls of each named report, among Calls
	Refused map[string]int64
}
