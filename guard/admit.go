package guard

import (
	"context"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
)

// pendingRetryAfter is when a reader refused for too many outstanding fills
// may ask again: by then some of them have usually been filled.
const pendingRetryAfter = 2 * time.Second

// pendingTTL bounds how long an admitted fill counts if its task never ends
// (deleted by hand, lost with Redis). A task that lives longer (retries with
// backoff, deferrals) stops counting at it: admission loosens for its
// customer, never tightens.
const pendingTTL = 15 * time.Minute

// Admit lets a reader's fill of k go to the queue, or returns its refusal (a
// *dashcache.Refusal): while the breaker of k's back end is open, when the
// customer has used its daily budget, or when it has CustomerPending fills
// outstanding already (a report that is outstanding is always admitted).
// An admitted fill counts as outstanding until FillEnded.
func (g *Guard) Admit(ctx context.Context, k dashcache.ReportKey) error {
	backend := g.backendOf(k)
	left, err := g.state.BreakerOpen(ctx, backend)
	if err != nil {
		return err
	}
	if left > 0 {
		platform := "the BI platform"
		if backend != "" {
			platform = fmt.Sprintf("back end %s (of report %s)", backend, k.Report)
		}
		return g.refuse(ctx, k.Customer, &dashcache.Refusal{
			Reason:     dashcache.ReasonBreaker,
			RetryAfter: left,
			Detail: fmt.Sprintf("%s is failing for every customer, so dashcache stopped calling it; "+
				"it tries again in %s. Cached reports are still served", platform, left.Round(time.Second)),
		})
	}
	if err := g.CheckBudget(ctx, k.Customer); err != nil {
		return err
	}
	admitted, err := g.state.Admit(ctx, k, g.cfg.CustomerPending, pendingTTL)
	if err != nil {
		return err
	}
	if !admitted {
		return g.refuse(ctx, k.Customer, &dashcache.Refusal{
			Reason:     dashcache.ReasonPending,
			RetryAfter: pendingRetryAfter,
			Detail: fmt.Sprintf("customer %s already has %d reports being computed (DASHCACHE_CUSTOMER_PENDING); "+
				"ask again in a few seconds. Cached reports are still served", k.Customer, g.cfg.CustomerPending),
		})
	}
	g.admissions.WithLabelValues("admitted").Inc()
	return nil
}

// FillEnded ends the count of an admitted fill of k: its task ended.
func (g *Guard) FillEnded(ctx context.Context, k dashcache.ReportKey) error {
	return g.state.EndAdmitted(ctx, k)
}

// CheckBudget refuses (a *dashcache.Refusal) a customer whose daily budget
// of BI calls is used: a reader's miss, and warming, which skips it.
func (g *Guard) CheckBudget(ctx context.Context, customer string) error {
	if g.cfg.DailyCalls == 0 {
		return nil
	}
	day, now := g.today()
	calls, err := g.state.Calls(ctx, day, customer)
	if err != nil || calls < int64(g.cfg.DailyCalls) {
		return err
	}
	return g.refuse(ctx, customer, budgetRefusal(customer, g.cfg.DailyCalls, now))
}

// refuse counts a refusal, in the metrics and in the customer's usage, and
// returns it.
func (g *Guard) refuse(ctx context.Context, customer string, r *dashcache.Refusal) error {
	g.admissions.WithLabelValues(r.Reason).Inc()
	day, _ := g.today()
	_ = g.state.CountRefusal(ctx, day, customer, r.Reason) // best effort: the refusal stands
	return r
}

// budgetRefusal is the refusal of a fill of customer, whose daily budget of
// BI calls is used up at now; the budget resets at the next midnight in
// now's location.
func budgetRefusal(customer string, budget int, now time.Time) *dashcache.Refusal {
	y, m, d := now.Date()
	reset := time.Date(y, m, d+1, 0, 0, 0, 0, now.Location())
	return &dashcache.Refusal{
		Reason:     dashcache.ReasonBudget,
		RetryAfter: reset.Sub(now),
		Detail: fmt.Sprintf("customer %s has used its %d BI calls for today (DASHCACHE_CUSTOMER_DAILY_CALLS); "+
			"cached reports are still served, and the budget resets at %s", customer, budget, reset.Format(time.RFC3339)),
	}
}

// Usage returns today's usage (a day in Zone).
func (g *Guard) Usage(ctx context.Context) (dashcache.Usage, error) {
	day, _ := g.today()
	byCustomer, err := g.state.UsageOn(ctx, day)
	if err != nil {
		return dashcache.Usage{}, err
	}
	u := dashcache.Usage{Day: day, Zone: g.cfg.Zone, DailyCalls: g.cfg.DailyCalls, Customers: map[string]dashcache.CustomerUsage{}}
	for c, cu := range byCustomer {
		line := dashcache.CustomerUsage{Calls: cu.Calls, Reports: cu.Reports, Refused: map[string]int64{}}
		for _, reason := range dashcache.RefusalReasons {
			line.Refused[reason] = cu.Refused[reason]
		}
		u.Customers[c] = line
	}
	return u, nil
}
