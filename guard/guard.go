// Package guard protects the BI platform for every process that shares the
// queue's Redis. It owns every guard, and their state (store.GuardState):
//
//   - Admit lets a reader's miss become a fill, or refuses it: while the
//     back end's breaker is open, when the customer has used its daily
//     budget, or when it has too many fills outstanding;
//   - Call makes a BI call once every guard lets it: the back end's fleet
//     rate (of which warming keeps a share) and its pause after a 429, the
//     customer's share of calls in flight, its daily budget, and the back
//     end's breaker, which stops calling a back end that keeps failing for
//     everyone.
//
// Rate, pause and breaker are held per back end, by name; the one BI
// platform of the http contract is the back end "".
//
// Its errors are the documented ones: a *dashcache.Refusal (a fill that will
// not start now), a *dashcache.Deferral (a call that must wait), or what the
// back end's call returned (a *dashcache.ProviderError); a Redis failure
// while guarding a call is a transient *dashcache.ProviderError.
package guard

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

// Defaults of Config.
const (
	// DefaultRate is the default number of BI calls per second to a back
	// end, for the whole fleet.
	DefaultRate = 10
	// DefaultCustomerPending is the default of Config.CustomerPending.
	DefaultCustomerPending = 20
	// DefaultCallTimeout is the default of Config.CallTimeout.
	DefaultCallTimeout = 60 * time.Second
	// DefaultRetryAfter is the pause after a 429 that gave no Retry-After.
	DefaultRetryAfter = time.Second
)

// WarmingShare is the share of a back end's rate that warming calls keep
// under any interactive load: while a warming call waits, readers' calls
// together get at most the rest.
const WarmingShare = 5 // a fifth

// DefaultBreaker is the default breaker (Backend.Breaker): it opens after 5
// failures (timeouts, 5xx, no connection) of at least 2 customers within a
// minute with no call answered in between, for a cool-down of 30 s.
var DefaultBreaker = store.BreakerRule{Failures: 5, Customers: 2, Window: time.Minute, Cooldown: 30 * time.Second}

// State is the guards' Redis state; *store.GuardState is one.
type State interface {
	TakeCall(ctx context.Context, backend string, rule store.RateRule, warming bool) (time.Duration, error)
	PauseCalls(ctx context.Context, backend string, d time.Duration) error
	BreakerAllow(ctx context.Context, backend string, probeTTL time.Duration) (allow, probe bool, wait time.Duration, err error)
	BreakerRecord(ctx context.Context, backend string, rule store.BreakerRule, customer string, failed bool, slowSince time.Time) (int, error)
	ReportLatency(ctx context.Context, backend string, l store.Latency) error
	AbandonProbe(ctx context.Context, backend string) error
	BreakerOpen(ctx context.Context, backend string) (time.Duration, error)
	ShareFree(ctx context.Context, customer string, share int) (bool, error)
	TakeShare(ctx context.Context, customer string, share int, ttl time.Duration) (*store.ShareSlot, error)
	DeferTask(ctx context.Context, customer, task string) error
	NextDeferred(ctx context.Context, customer string) (string, error)
	Admit(ctx context.Context, k dashcache.ReportKey, limit int, ttl time.Duration) (bool, error)
	EndAdmitted(ctx context.Context, k dashcache.ReportKey) error
	Spend(ctx context.Context, day dashcache.Day, customer, report string, budget int) (bool, error)
	Calls(ctx context.Context, day dashcache.Day, customer string) (int64, error)
	CountRefusal(ctx context.Context, day dashcache.Day, customer, reason string) error
	UsageOn(ctx context.Context, day dashcache.Day) (map[string]store.Usage, error)
}

var _ State = (*store.GuardState)(nil)

// Backend is how one back end is guarded.
type Backend struct {
	// Rate is how many calls the whole fleet may make to it together in
	// any one second. Default DefaultRate.
	Rate int
	// Burst is how many of them may go at once: at most Burst calls within
	// any Burst/Rate of a second. Default: Rate, at most Rate.
	Burst int
	// Breaker says when the fleet stops calling it. Zero fields take
	// DefaultBreaker's.
	Breaker store.BreakerRule
}

// Config configures a Guard.
type Config struct {
	// State is the fleet's shared state. Required.
	State State
	// Backends are the back ends by name: "" is the BI platform of the http
	// contract, which answers the default report. Default: "" alone, with
	// Backend's defaults.
	Backends map[string]Backend
	// BackendOf names the back end of a report (one of Backends). Default:
	// "" for every report.
	BackendOf func(report string) string
	// CustomerShare is how many BI calls one customer may have in flight
	// across the fleet, over every back end. Default: half of the ""
	// back end's rate, rounded up.
	CustomerShare int
	// CustomerPending is how many interactive fills one customer may have
	// outstanding (queued or running); a reader's miss past it is refused.
	// Default DefaultCustomerPending.
	CustomerPending int
	// DailyCalls is how many BI calls one customer may make a day (a day in
	// Zone), over every back end; 0, the default, is no limit.
	DailyCalls int
	// Zone is where days begin. Default UTC.
	Zone *time.Location
	// CallTimeout is the longest a call takes (the client's timeout): a
	// share slot or a breaker's probe whose holder died frees itself a
	// little after it. Default DefaultCallTimeout.
	CallTimeout time.Duration
	// Registerer receives dashcache_breaker_open,
	// dashcache_breaker_changes_total and dashcache_admissions_total.
	// Default: not exported.
	Registerer prometheus.Registerer
	// Now is the clock that days are read from. Default time.Now.
	Now func() time.Time
}

// Guard guards the BI platform. It is safe for concurrent use.
type Guard struct {
	cfg        Config
	state      State
	backends   map[string]backend
	breakers   *prometheus.CounterVec
	admissions *prometheus.CounterVec

	// sleep waits d or until ctx ends; tests replace it to move a fake clock.
	sleep func(ctx context.Context, d time.Duration) error
}

// backend is a back end's rules, with defaults filled in.
type backend struct {
	rate    store.RateRule
	breaker store.BreakerRule
}

// New returns a Guard of cfg, with defaults for zero fields.
func New(cfg Config) (*Guard, error) {
	if cfg.State == nil {
		return nil, errors.New("guard: Config.State is required")
	}
	if len(cfg.Backends) == 0 {
		cfg.Backends = map[string]Backend{"": {}}
	}
	if _, ok := cfg.Backends[""]; !ok {
		return nil, errors.New(`guard: Config.Backends needs the back end "", the default report's`)
	}
	cfg.CustomerPending = cmp.Or(cfg.CustomerPending, DefaultCustomerPending)
	cfg.Zone = cmp.Or(cfg.Zone, time.UTC)
	cfg.CallTimeout = cmp.Or(cfg.CallTimeout, DefaultCallTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BackendOf == nil {
		cfg.BackendOf = func(string) string { return "" }
	}
	if cfg.CustomerShare < 0 || cfg.CustomerPending < 0 || cfg.DailyCalls < 0 {
		return nil, errors.New("guard: Config.CustomerShare, CustomerPending and DailyCalls must not be negative")
	}
	g := &Guard{
		cfg:      cfg,
		state:    cfg.State,
		backends: map[string]backend{},
		breakers: prom.CounterVec("dashcache_breaker_changes_total",
			"Times this process opened the fleet's breaker on the BI platform, or closed it.", "to", "open", "closed"),
		admissions: prom.CounterVec("dashcache_admissions_total",
			"Fills asked for: admitted, or refused by reason (pending: too many outstanding for the customer; budget: its daily BI calls used; breaker: the BI platform is failing).",
			"result", append([]string{"admitted"}, dashcache.RefusalReasons...)...),
		sleep: sleep,
	}
	for name, b := range cfg.Backends {
		rate := cmp.Or(b.Rate, DefaultRate)
		if name != "" && dashcache.CheckReportName(name) != nil { // a name goes into a hash tag
			return nil, fmt.Errorf("guard: back end %q: a back end's name is 1-%d characters of a-z 0-9 _ -", name, dashcache.MaxReportNameLen)
		}
		if b.Rate < 0 || b.Burst < 0 {
			return nil, fmt.Errorf("guard: back end %q: Rate and Burst must not be negative", name)
		}
		warming := (rate + WarmingShare - 1) / WarmingShare
		g.backends[name] = backend{
			rate: store.RateRule{Rate: rate, Burst: min(cmp.Or(b.Burst, rate), rate), Readers: max(rate-warming, 1)},
			breaker: store.BreakerRule{
				Failures:  cmp.Or(b.Breaker.Failures, DefaultBreaker.Failures),
				Customers: cmp.Or(b.Breaker.Customers, DefaultBreaker.Customers),
				Window:    cmp.Or(b.Breaker.Window, DefaultBreaker.Window),
				Cooldown:  cmp.Or(b.Breaker.Cooldown, DefaultBreaker.Cooldown),
			},
		}
	}
	g.cfg.CustomerShare = cmp.Or(cfg.CustomerShare, (g.backends[""].rate.Rate+1)/2)
	if err := prom.Register(cfg.Registerer, g.breakers, g.admissions, breakerGauge{g}); err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	return g, nil
}

// breakerGauge is dashcache_breaker_open{backend}: 1 while a back end's
// breaker is open, read from Redis at each scrape. The default back end's
// label is empty, which Prometheus reads as no label: a query of the metric
// without one still finds it.
type breakerGauge struct{ g *Guard }

var breakerOpenDesc = prometheus.NewDesc("dashcache_breaker_open",
	"1 while a back end's breaker keeps every worker from calling it, else 0 (read from Redis at each scrape; backend is empty for the default report's).",
	[]string{"backend"}, nil)

func (b breakerGauge) Describe(ch chan<- *prometheus.Desc) { ch <- breakerOpenDesc }

func (b breakerGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for name := range b.g.backends {
		open := 0.0
		if left, err := b.g.state.BreakerOpen(ctx, name); err == nil && left > 0 {
			open = 1
		}
		ch <- prometheus.MustNewConstMetric(breakerOpenDesc, prometheus.GaugeValue, open, name)
	}
}

// backendOf returns the name of the back end that answers k's report.
func (g *Guard) backendOf(k dashcache.ReportKey) string { return g.cfg.BackendOf(k.Report) }

// Backend returns the name of the back end that answers report ("": the
// default one).
func (g *Guard) Backend(report string) string { return g.cfg.BackendOf(report) }

// CallTimeout is the longest a BI call runs (Config.CallTimeout).
func (g *Guard) CallTimeout() time.Duration { return g.cfg.CallTimeout }

// ReportLatency tells the fleet a back end's latency, as a worker sees it.
func (g *Guard) ReportLatency(ctx context.Context, backend string, l store.Latency) error {
	return g.state.ReportLatency(ctx, backend, l)
}

// Rate returns how many calls the whole fleet may make to the back end
// name in a rate window (store.RateWindow, 1.1 s: its Backend.Rate, or the
// default); 0 for a back end
// the guard does not know.
func (g *Guard) Rate(name string) int { return g.backends[name].rate.Rate }

// rules returns the rules of a back end, or an error naming it.
func (g *Guard) rules(name string) (backend, error) {
	b, ok := g.backends[name]
	if !ok {
		return backend{}, fmt.Errorf("guard: no back end named %q", name)
	}
	return b, nil
}

// today returns the current day and time in Zone.
func (g *Guard) today() (dashcache.Day, time.Time) {
	now := g.cfg.Now().In(g.cfg.Zone)
	return dashcache.DayOf(now), now
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
