package guard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
)

// Waits of a deferred call: a customer at its share asks again after
// shareRetry (or sooner, woken by its jobs), a call behind the breaker when
// the cool-down ends.
const shareRetry = 2 * time.Second

// slotMargin is how much longer than a call a share slot or the breaker's
// probe lives, should its holder die.
const slotMargin = 15 * time.Second

// Call makes query, the BI call of report k, once every guard lets it:
//
//   - a customer with its share of calls in flight, or a breaker that is
//     open, defers the call: a *dashcache.Deferral, nothing called;
//   - the back end's pause after a 429, and its rate (of which warming, when
//     warming is set, keeps a share: WarmingShare), make it wait;
//   - a customer past its daily budget is refused: a *dashcache.Refusal.
//
// The outcome is recorded in the back end's breaker; a rate_limited answer
// pauses the fleet's calls to it for its RetryAfter. If ctx ends while
// waiting, or Redis fails, it returns a transient *dashcache.ProviderError
// without calling.
func (g *Guard) Call(ctx context.Context, k dashcache.ReportKey, warming bool, query func(context.Context) ([]byte, error)) (body []byte, err error) {
	name := g.backendOf(k)
	b, err := g.rules(name)
	if err != nil {
		return nil, err
	}
	free, err := g.state.ShareFree(ctx, k.Customer, g.cfg.CustomerShare)
	if err != nil {
		return nil, waitError(ctx, "reading the customer's share", err)
	}
	if !free {
		return nil, &dashcache.Deferral{Reason: dashcache.ReasonShare, Delay: shareRetry}
	}
	if err := g.wait(ctx, name, b, warming); err != nil {
		return nil, err
	}
	// The breaker is asked last, as close to the call as can be: a call
	// allowed before it opened and made after would fail for nothing.
	allow, probe, wait, err := g.state.BreakerAllow(ctx, name, g.cfg.CallTimeout+slotMargin)
	if err != nil {
		return nil, waitError(ctx, "asking the breaker", err)
	}
	if !allow {
		return nil, &dashcache.Deferral{Reason: dashcache.ReasonBreaker, Delay: wait}
	}
	called := false
	if probe {
		defer func() {
			if !called {
				g.abandonProbe(name)
			}
		}()
	}
	slot, err := g.state.TakeShare(ctx, k.Customer, g.cfg.CustomerShare, g.cfg.CallTimeout+slotMargin)
	switch {
	case errors.Is(err, store.ErrShareInUse): // taken while this call waited
		return nil, &dashcache.Deferral{Reason: dashcache.ReasonShare, Delay: shareRetry}
	case err != nil:
		return nil, waitError(ctx, "taking a slot of the customer's share", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = slot.Release(rctx) // if Redis fails here, the slot frees itself
	}()
	day, now := g.today()
	spent, err := g.state.Spend(ctx, day, k.Customer, k.Report, g.cfg.DailyCalls)
	if err != nil {
		return nil, waitError(ctx, "counting the call", err)
	}
	if !spent {
		return nil, budgetRefusal(k.Customer, g.cfg.DailyCalls, now)
	}
	called = true
	began := g.cfg.Now()
	if probe {
		ctx = dashcache.Patient(ctx) // a probe cut short would keep the breaker open
	}
	body, err = query(ctx)
	g.record(ctx, name, b, k.Customer, probe, began, err)
	g.pauseAfter(name, err)
	return body, err
}

// Do makes call, a call of the back end named that asks for no report
// (listing its customers, for a warming plan), under its rate and pause
// alone, as a warming call.
func (g *Guard) Do(ctx context.Context, backend string, call func(context.Context) error) error {
	b, err := g.rules(backend)
	if err != nil {
		return err
	}
	if err := g.wait(ctx, backend, b, true); err != nil {
		return err
	}
	err = call(ctx)
	g.pauseAfter(backend, err)
	return err
}

// wait returns when the back end has no pause set and its rate grants a
// call. A warming call says that it waits; while one does, readers' calls
// together get at most the rest of the rate, so that warming keeps its share.
func (g *Guard) wait(ctx context.Context, name string, b backend, warming bool) error {
	for {
		d, err := g.state.TakeCall(ctx, name, b.rate, warming)
		if err != nil {
			return waitError(ctx, "taking a call slot", err)
		}
		if d == 0 {
			return nil
		}
		if err := g.sleep(ctx, d); err != nil {
			return waitError(ctx, "waiting for a call slot", err)
		}
	}
}

// waitError is a failure to guard a call: transient, nothing called.
func waitError(ctx context.Context, doing string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	return &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Err: fmt.Errorf("rate limit: %s: %w", doing, err)}
}

// record tells the breaker how a call went: failed when the platform did not
// answer (timeout, 5xx, no connection); anything else, a 4xx or a bad body
// included, is an answer. A call its caller gave up on, or that a worker cut
// for its slow lane, says nothing about the platform. A failure that came
// after the call ran past its back end's usual latency (Slow) counts only
// if the back end answered no call since this one began.
func (g *Guard) record(ctx context.Context, name string, b backend, customer string, probe bool, began time.Time, err error) {
	if ctx.Err() != nil || errors.Is(err, dashcache.ErrSlowLaneFull) { // cut by us, not failed by the platform
		if probe {
			g.abandonProbe(name)
		}
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var slowSince time.Time
	if pe := (*dashcache.ProviderError)(nil); errors.As(err, &pe) && pe.Slow {
		slowSince = began
	}
	change, rerr := g.state.BreakerRecord(rctx, name, b.breaker, customer, dashcache.Outcome(err) == dashcache.OutcomeTransient, slowSince)
	switch {
	case rerr != nil: // best effort: the next call's outcome counts
	case change > 0:
		g.breakers.WithLabelValues("open").Inc()
	case change < 0:
		g.breakers.WithLabelValues("closed").Inc()
	}
}

func (g *Guard) abandonProbe(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.state.AbandonProbe(ctx, name) // if Redis fails here, the probe frees itself
}

// pauseAfter pauses the fleet's calls to the back end if err says it rate
// limited us. The pause is best effort: if Redis fails here, the next
// caller's own 429 sets it.
func (g *Guard) pauseAfter(name string, err error) {
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) || pe.Outcome != dashcache.OutcomeRateLimited {
		return
	}
	// Not the caller's ctx: it may be ending, and the pause matters to others.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = g.state.PauseCalls(ctx, name, cmp.Or(max(pe.RetryAfter, 0), DefaultRetryAfter))
}

// WaitForShare records that a task of the customer, deferred for its share
// (task is the caller's name for it), waits to be woken by NextWaiting.
func (g *Guard) WaitForShare(ctx context.Context, customer, task string) error {
	return g.state.DeferTask(ctx, customer, task)
}

// NextWaiting takes the customer's task that has waited longest for a slot
// of its share off the list and returns it, or "" when none waits: one of
// the customer's calls just ended.
func (g *Guard) NextWaiting(ctx context.Context, customer string) (string, error) {
	return g.state.NextDeferred(ctx, customer)
}
