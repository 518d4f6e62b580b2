package provider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultRate is the default number of BI calls per second for the whole fleet.
const DefaultRate = 10

// WarmingShare is the share of the fleet's rate that warming calls keep under
// any interactive load: while a warming call waits, readers' calls together
// get at most the rest.
const WarmingShare = 5 // a fifth

// Defaults of the breaker (LimitConfig.Breaker): it opens after 5 failures
// (timeouts, 5xx, no connection) of at least 2 customers within a minute with
// no call answered in between, for a cool-down of 30 s.
var DefaultBreaker = store.BreakerRule{Failures: 5, Customers: 2, Window: time.Minute, Cooldown: 30 * time.Second}

// Waits of a deferred call: a customer at its share asks again after
// shareRetry (or sooner, woken by its jobs), a call behind the breaker when
// the cool-down ends.
const shareRetry = 2 * time.Second

// slotMargin is how much longer than a call a share slot or the breaker's
// probe lives, should its holder die.
const slotMargin = 15 * time.Second

// LimitConfig configures a Limited.
type LimitConfig struct {
	// Store is the fleet's shared state. Required.
	Store *store.Store
	// Rate is how many BI calls the whole fleet may make together in any
	// one second. Default 10.
	Rate int
	// Burst is how many of them may go at once: at most Burst calls within
	// any Burst/Rate of a second. Default: Rate, at most Rate.
	Burst int
	// CustomerShare is how many BI calls one customer may have in flight
	// across the fleet. Default: half of Rate, rounded up.
	CustomerShare int
	// DailyCalls is how many BI calls one customer may make a day (a day in
	// Zone); 0, the default, is no limit.
	DailyCalls int
	// Zone is where days begin. Default UTC.
	Zone *time.Location
	// CallTimeout is the longest a call takes (the client's timeout): a
	// share slot or the breaker's probe whose holder died frees itself a
	// little after it. Default DefaultTimeout.
	CallTimeout time.Duration
	// Breaker says when the fleet stops calling a failing platform. Zero
	// fields take DefaultBreaker's.
	Breaker store.BreakerRule
	// Registerer receives dashcache_breaker_changes_total. Default: not
	// exported.
	Registerer prometheus.Registerer
	// Now is the clock that days are read from. Default time.Now.
	Now func() time.Time
}

// Limited is a Source that guards the BI platform for every process sharing
// its Redis: one call rate for the fleet (of which warming keeps a share), the
// platform's Retry-After after a 429, a share of calls in flight per
// customer, an optional daily budget per customer, and a breaker that stops
// calling a platform that keeps failing for everyone. It is safe for
// concurrent use.
type Limited struct {
	src      Source
	store    *store.Store
	rate     store.RateRule
	cfg      LimitConfig
	breakers *prometheus.CounterVec

	// sleep waits d or until ctx ends; tests replace it to move a fake clock.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewLimited returns src limited by cfg, with defaults for zero fields.
func NewLimited(src Source, cfg LimitConfig) (*Limited, error) {
	cfg.Rate = cmp.Or(cfg.Rate, DefaultRate)
	cfg.Burst = min(cmp.Or(cfg.Burst, cfg.Rate), cfg.Rate)
	cfg.CustomerShare = cmp.Or(cfg.CustomerShare, (cfg.Rate+1)/2)
	cfg.Zone = cmp.Or(cfg.Zone, time.UTC)
	cfg.CallTimeout = cmp.Or(cfg.CallTimeout, DefaultTimeout)
	cfg.Breaker.Failures = cmp.Or(cfg.Breaker.Failures, DefaultBreaker.Failures)
	cfg.Breaker.Customers = cmp.Or(cfg.Breaker.Customers, DefaultBreaker.Customers)
	cfg.Breaker.Window = cmp.Or(cfg.Breaker.Window, DefaultBreaker.Window)
	cfg.Breaker.Cooldown = cmp.Or(cfg.Breaker.Cooldown, DefaultBreaker.Cooldown)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case src == nil:
		return nil, errors.New("provider: NewLimited needs a source")
	case cfg.Store == nil:
		return nil, errors.New("provider: LimitConfig.Store is required")
	case cfg.Rate < 0 || cfg.Burst < 0 || cfg.CustomerShare < 0 || cfg.DailyCalls < 0:
		return nil, fmt.Errorf("provider: LimitConfig.Rate, Burst, CustomerShare and DailyCalls must not be negative")
	}
	warming := (cfg.Rate + WarmingShare - 1) / WarmingShare
	l := &Limited{
		src:   src,
		store: cfg.Store,
		rate:  store.RateRule{Rate: cfg.Rate, Burst: cfg.Burst, Readers: max(cfg.Rate-warming, 1)},
		cfg:   cfg,
		breakers: prom.CounterVec("dashcache_breaker_changes_total",
			"Times this process opened the fleet's breaker on the BI platform, or closed it.", "to", "open", "closed"),
		sleep: sleep,
	}
	if err := prom.Register(cfg.Registerer, l.breakers); err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return l, nil
}

// Query calls the wrapped source for key once every guard lets it:
//
//   - a customer with its share of calls in flight, or a breaker that is
//     open, defers the call: a *dashcache.Deferral, nothing called;
//   - the fleet's pause after a 429, and its rate (see WarmingShare), make it
//     wait;
//   - a customer past its daily budget is refused: a *dashcache.Refusal.
//
// The outcome is recorded in the breaker; a rate_limited answer pauses the
// fleet for its RetryAfter. If ctx ends while waiting, or Redis fails, it
// returns a transient *dashcache.ProviderError without calling the source.
func (l *Limited) Query(ctx context.Context, key dashcache.ReportKey) (body []byte, err error) {
	free, err := l.store.ShareFree(ctx, key.Customer, l.cfg.CustomerShare)
	if err != nil {
		return nil, l.waitError(ctx, "reading the customer's share", err)
	}
	if !free {
		return nil, &dashcache.Deferral{Reason: dashcache.ReasonShare, Delay: shareRetry}
	}
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	// The breaker is asked last, as close to the call as can be: a call
	// allowed before it opened and made after would fail for nothing.
	allow, probe, wait, err := l.store.BreakerAllow(ctx, l.cfg.CallTimeout+slotMargin)
	if err != nil {
		return nil, l.waitError(ctx, "asking the breaker", err)
	}
	if !allow {
		return nil, &dashcache.Deferral{Reason: dashcache.ReasonBreaker, Delay: wait}
	}
	called := false
	if probe {
		defer func() {
			if !called {
				l.abandonProbe()
			}
		}()
	}
	slot, err := l.store.TakeShare(ctx, key.Customer, l.cfg.CustomerShare, l.cfg.CallTimeout+slotMargin)
	switch {
	case errors.Is(err, store.ErrShareInUse): // taken while this call waited
		return nil, &dashcache.Deferral{Reason: dashcache.ReasonShare, Delay: shareRetry}
	case err != nil:
		return nil, l.waitError(ctx, "taking a slot of the customer's share", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = slot.Release(rctx) // if Redis fails here, the slot frees itself
	}()
	now := l.cfg.Now().In(l.cfg.Zone)
	spent, err := l.store.Spend(ctx, dashcache.DayOf(now), key.Customer, l.cfg.DailyCalls)
	if err != nil {
		return nil, l.waitError(ctx, "counting the call", err)
	}
	if !spent {
		return nil, dashcache.BudgetRefusal(key.Customer, l.cfg.DailyCalls, now)
	}
	called = true
	body, err = l.src.Query(ctx, key)
	l.record(ctx, key.Customer, probe, err)
	l.pauseAfter(err)
	return body, err
}

// Customers asks the wrapped source for its customers, under the same rate
// and pause as Query: it is a BI call too.
func (l *Limited) Customers(ctx context.Context) ([]string, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	customers, err := l.src.Customers(ctx)
	l.pauseAfter(err)
	return customers, err
}

// wait returns when no pause is set and the rate limit grants a call. A
// warming call (dashcache.PriorityOf ctx) says that it waits; while one does,
// readers' calls together get at most the rest of the rate, so that warming
// keeps its share.
func (l *Limited) wait(ctx context.Context) error {
	warming := dashcache.PriorityOf(ctx) == dashcache.Warming
	for {
		d, err := l.store.TakeCall(ctx, l.rate, warming)
		if err != nil {
			return l.waitError(ctx, "taking a call slot", err)
		}
		if d == 0 {
			return nil
		}
		if err := l.sleep(ctx, d); err != nil {
			return l.waitError(ctx, "waiting for a call slot", err)
		}
	}
}

func (l *Limited) waitError(ctx context.Context, doing string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	return transient(0, fmt.Errorf("rate limit: %s: %w", doing, err))
}

// record tells the breaker how a call went: failed when the platform did not
// answer (timeout, 5xx, no connection); anything else, a 4xx or a bad body
// included, is an answer. A call its caller gave up on says nothing about the
// platform.
func (l *Limited) record(ctx context.Context, customer string, probe bool, err error) {
	if ctx.Err() != nil {
		if probe {
			l.abandonProbe()
		}
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	change, rerr := l.store.BreakerRecord(rctx, l.cfg.Breaker, customer, dashcache.Outcome(err) == dashcache.OutcomeTransient)
	switch {
	case rerr != nil: // best effort: the next call's outcome counts
	case change > 0:
		l.breakers.WithLabelValues("open").Inc()
	case change < 0:
		l.breakers.WithLabelValues("closed").Inc()
	}
}

func (l *Limited) abandonProbe() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.store.AbandonProbe(ctx) // if Redis fails here, the probe frees itself
}

// pauseAfter pauses the fleet if err says the platform rate limited us. The
// pause is best effort: if Redis fails here, the next caller's own 429 sets it.
func (l *Limited) pauseAfter(err error) {
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) || pe.Outcome != dashcache.OutcomeRateLimited {
		return
	}
	// Not the caller's ctx: it may be ending, and the pause matters to others.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.store.PauseCalls(ctx, cmp.Or(max(pe.RetryAfter, 0), DefaultRetryAfter))
}
