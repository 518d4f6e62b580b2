// Package scheduler runs warming plans: on each plan's cron schedule it
// computes the plan's range presets for "today" (in the plan file's zone) and
// enqueues one fill task per customer and range on the warming queue.
//
// Presets are computed when a plan fires, not when it is loaded, which is why
// this package drives robfig/cron directly rather than asynq.Scheduler (whose
// task payloads are fixed).
package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/prom"
)

// DefaultFiringTimeout bounds one firing of a plan, so that a hung Redis or BI
// platform cannot pile firings up.
const DefaultFiringTimeout = time.Minute

// Config configures a Scheduler. Zero fields take the defaults stated.
type Config struct {
	// File holds the plans. Required.
	File *File
	// DefaultZone is the zone that cron times and "today" are computed in
	// when the file names none: File.Timezone wins. Default: UTC.
	DefaultZone *time.Location
	// Warmer enqueues the plans' fill tasks (jobs.Enqueuer). Required.
	Warmer dashcache.Warmer
	// Customers lists the BI platform's customers, for plans with
	// customers: all. Required only if some plan uses it.
	Customers func(ctx context.Context) ([]string, error)
	// ReadSince returns the customer's reports read since since
	// (store.Index.ReadSince), for plans with ranges: [recently_read].
	// Required only if some plan uses it.
	ReadSince func(ctx context.Context, customer string, since time.Time) ([]dashcache.ReportKey, error)
	// Reports are the reports plans may warm: the catalogue's, which
	// plans name, and the default report, which plans without reports:
	// warm. Default: the default report alone.
	Reports dashcache.Served
	// Log receives one line per firing and cron's own messages. Default: no
	// logs.
	Log zerolog.Logger
	// Now is the clock that "today" is read from. Default: time.Now. (Cron
	// itself runs on the real clock.)
	Now func() time.Time
	// FiringTimeout bounds one firing of a plan. Default: DefaultFiringTimeout.
	FiringTimeout time.Duration

	// Capacity returns what warms can use now, of the named back ends and
	// of the workers: for Project, for the size of each plan logged at
	// Start and at each firing, and for the deadline metric. Default: none
	// of them.
	Capacity func(ctx context.Context, backends []string) (Capacity, error)
	// BackendOf names the back end that answers a report ("": the default
	// report's BI platform). Default: "" for every report.
	BackendOf func(report string) string
	// Known returns what the index holds of customers' reports
	// (store.Index.Known), so that a plan's size leaves out the reports
	// still fresh when it fires and counts the ranges of recently_read.
	// Default: nothing is known: no report is left out, and the ranges of
	// recently_read cannot be counted before the plan fires.
	Known func(ctx context.Context, customers []string, now, readSince time.Time) (Known, error)
	// Remaining returns how many tasks the warming queue holds, pending,
	// running or waiting, for the deadline metric. Default: no metric.
	Remaining func(ctx context.Context) (int, error)
	// Registerer receives dashcache_plan_deadline_margin_seconds (with
	// Capacity and Remaining). Default: not exported.
	Registerer prometheus.Registerer
}

// Scheduler fires warming plans on their cron schedules.
type Scheduler struct {
	plans     map[string]Plan
	order     []string                 // plan names, as in the file
	schedules map[string]cron.Schedule // by plan name
	zone      *time.Location
	warmer    dashcache.Warmer
	served    dashcache.Served
	customers func(context.Context) ([]string, error)
	readSince func(context.Context, string, time.Time) ([]dashcache.ReportKey, error)
	log       zerolog.Logger
	now       func() time.Time
	timeout   time.Duration
	cron      *cron.Cron
	entries   map[cron.EntryID]string // plan name by cron entry
	capacity  func(context.Context, []string) (Capacity, error)
	backendOf func(string) string
	known     func(context.Context, []string, time.Time, time.Time) (Known, error)
	remaining func(context.Context) (int, error)
	warms     *warms

	mu        sync.Mutex
	started   bool
	stopped   bool
	runCtx    context.Context // parent of cron firings; cancelled by Shutdown
	cancelRun context.CancelFunc
	jobsDone  <-chan struct{} // closed when the last running firing returns
	sized     chan struct{}   // closed when the sizes logged at Start are
}

// New returns a Scheduler for cfg's plans. It validates the plans again and
// checks that every function a plan needs is given. Nothing runs before Start.
func New(cfg Config) (*Scheduler, error) {
	if cfg.File == nil {
		return nil, errors.New("scheduler: Config.File is required")
	}
	if err := cfg.File.validate(); err != nil {
		return nil, fmt.Errorf("scheduler: %w", err)
	}
	if cfg.Warmer == nil {
		return nil, errors.New("scheduler: Config.Warmer is required")
	}
	zone := cmp.Or(cfg.DefaultZone, time.UTC)
	if cfg.File.Timezone != "" {
		z, err := time.LoadLocation(cfg.File.Timezone)
		if err != nil {
			return nil, fmt.Errorf("scheduler: timezone %q: %w", cfg.File.Timezone, err)
		}
		zone = z
	}
	s := &Scheduler{
		plans:     make(map[string]Plan, len(cfg.File.Plans)),
		zone:      zone,
		warmer:    cfg.Warmer,
		served:    cfg.Reports,
		customers: cfg.Customers,
		readSince: cfg.ReadSince,
		log:       cfg.Log.With().Str("component", "scheduler").Logger(),
		now:       cfg.Now,
		timeout:   cmp.Or(cfg.FiringTimeout, DefaultFiringTimeout),
		entries:   make(map[cron.EntryID]string, len(cfg.File.Plans)),
		schedules: make(map[string]cron.Schedule, len(cfg.File.Plans)),
		capacity:  cfg.Capacity,
		backendOf: cfg.BackendOf,
		known:     cfg.Known,
		remaining: cfg.Remaining,
		warms:     newWarms(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.backendOf == nil {
		s.backendOf = func(string) string { return "" }
	}
	s.cron = cron.New(cron.WithLocation(zone), cron.WithLogger(cronLogger{s.log}))
	for _, p := range cfg.File.Plans {
		if p.Customers.All && cfg.Customers == nil {
			return nil, fmt.Errorf("scheduler: plan %q uses customers: all, but no BI platform lists the customers "+
				"(the provider contract's GET /customers): name them", p.Name)
		}
		for _, r := range p.reports() {
			if err := cfg.Reports.Check(r); err != nil {
				return nil, fmt.Errorf("scheduler: plan %q: %w", p.Name, err)
			}
		}
		if slices.Contains(p.Ranges, RecentlyRead) && cfg.ReadSince == nil {
			return nil, fmt.Errorf("scheduler: plan %q uses ranges: [%s], so Config.ReadSince is required", p.Name, RecentlyRead)
		}
		p.Ranges = slices.Clone(p.Ranges)
		p.Reports = slices.Clone(p.Reports)
		p.within, _ = p.readWithin() // checked by validate
		p.Customers.Names = slices.Clone(p.Customers.Names)
		s.plans[p.Name] = p
		s.order = append(s.order, p.Name)

		sched, err := parseCron(p.Cron)
		if err != nil {
			return nil, fmt.Errorf("scheduler: plan %q: %w", p.Name, err)
		}
		s.schedules[p.Name] = sched
		l := cronLogger{s.log.With().Str("plan", p.Name).Logger()}
		job := cron.NewChain(cron.Recover(l), cron.SkipIfStillRunning(l)).Then(cron.FuncJob(func() {
			_, _ = s.RunPlan(s.runCtx, p.Name) // RunPlan logs the outcome
		}))
		s.entries[s.cron.Schedule(sched, job)] = p.Name
	}
	if s.capacity != nil && s.remaining != nil {
		if err := prom.Register(cfg.Registerer, marginGauge{s}); err != nil {
			return nil, fmt.Errorf("scheduler: %w", err)
		}
	}
	return s, nil
}

// Plans returns the names of the plans, in the file's order.
func (s *Scheduler) Plans() []string { return slices.Clone(s.order) }

// Start starts firing plans on their schedules. ctx's values reach the
// firings, but its cancellation does not: Shutdown stops them. With
// Config.Capacity, it then logs each plan's size (Project) in the
// background. Calling Start again is a no-op; calling it after Shutdown is
// an error.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return errors.New("scheduler: Start after Shutdown")
	}
	if s.started {
		return nil
	}
	s.started = true
	s.runCtx, s.cancelRun = context.WithCancel(context.WithoutCancel(ctx))
	s.cron.Start()
	for _, e := range s.cron.Entries() {
		s.log.Info().Str("plan", s.entries[e.ID]).Time("next", e.Next).Msg("warming plan scheduled")
	}
	if s.capacity != nil {
		s.sized = make(chan struct{})
		go func() {
			defer close(s.sized)
			for _, name := range s.order {
				ctx, cancel := context.WithTimeout(s.runCtx, s.timeout)
				pr, err := s.Project(ctx, name)
				cancel()
				s.logSize(s.log.With().Str("plan", name).Logger(), pr, err)
			}
		}()
	}
	return nil
}

// Shutdown stops firing plans and waits, up to ctx's end, for running firings
// to return. If ctx ends first, it cancels them and returns ctx's error.
// Calling Shutdown again waits the same way; without Start it does nothing.
func (s *Scheduler) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.stopped {
		s.stopped = true
		if s.started {
			s.jobsDone = s.cron.Stop().Done()
		}
	}
	done, cancel, sized := s.jobsDone, s.cancelRun, s.sized
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("scheduler: shutdown with a firing still running: %w", ctx.Err())
	}
	cancel()
	if sized != nil {
		<-sized // ends with runCtx
	}
	return err
}

// RunPlan fires the named plan once, now: it computes today in the
// scheduler's zone, resolves the customers (asking Config.Customers for
// customers: all, and skipping with a warning any name from it that is not a
// valid customer), and enqueues one fill task per customer and range. A key
// that fails does not stop the others; its error is in the result's Errors. The
// error return is for a firing that could not run at all: an unknown plan or
// a failed customer list. The firing is bounded by Config.FiringTimeout and
// logs one line with its counts, one per customer skipped because its
// daily budget of BI calls is used, and, with Config.Capacity, one with its
// size (as Project gives it, for this firing's keys).
func (s *Scheduler) RunPlan(ctx context.Context, name string) (dashcache.WarmResult, error) {
	p, ok := s.plans[name]
	if !ok {
		names := make([]string, 0, len(s.plans))
		for n := range s.plans {
			names = append(names, n)
		}
		slices.Sort(names)
		return dashcache.WarmResult{}, fmt.Errorf("scheduler: no plan named %q; the plans are %q", name, names)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	log := s.log.With().Str("plan", name).Logger()
	start := time.Now()
	firedAt := s.now().In(s.zone)
	s.warms.fire(name, firedAt)
	defer s.warms.returned(name)

	customers, keys, keyErrs, err := s.keysOf(ctx, p, firedAt, log)
	if err != nil {
		log.Error().Err(err).Dur("duration", time.Since(start)).Msg("warming plan failed")
		return dashcache.WarmResult{}, err
	}
	// Sized before its tasks are enqueued: once they are, reports this
	// warm has filled would count as fresh.
	var size func()
	if s.capacity != nil {
		pr, err := s.size(ctx, p, firedAt, customers, keys)
		size = func() { s.logSize(log, pr, err) }
	}
	res := dashcache.WarmAll(ctx, s.warmer, keys, dashcache.Refresh{}, dashcache.ContinueOnError)
	res.Errors = append(keyErrs, res.Errors...)
	// A customer whose daily budget is used is skipped, once a line.
	skipped := map[string]bool{}
	for _, wk := range res.Keys {
		if wk.Result == dashcache.WarmSkipped && !skipped[wk.Key.Customer] {
			skipped[wk.Key.Customer] = true
			log.Warn().Str("customer", wk.Key.Customer).Msgf("skipping the customer: %v", wk.Err)
		}
	}
	ev := log.Info()
	if len(res.Errors) > 0 {
		ev = log.Warn().AnErr("first_error", res.Errors[0])
	}
	ev.Int("keys", len(keys)).
		Int("enqueued", res.Enqueued).
		Int("duplicate", res.Duplicates).
		Int("skipped", res.Skipped).
		Int("failed", len(res.Errors)).
		Dur("duration", time.Since(start)).
		Msg("warming plan fired")
	if size != nil {
		size()
	}
	return res, nil
}

// keysOf returns the customers and the keys a firing of p warms for today,
// the firing's time, and the errors of keys it could not build.
func (s *Scheduler) keysOf(ctx context.Context, p Plan, today time.Time, log zerolog.Logger) ([]string, []dashcache.ReportKey, []error, error) {
	customers, err := s.customersOf(ctx, p, log)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, keyErrs := planKeys(p, s.served, customers, today, func(c string) ([]dashcache.ReportKey, error) {
		read, err := s.readSince(ctx, c, s.now().Add(-p.within))
		if err != nil {
			return nil, fmt.Errorf("the reports %s read: %w", c, err)
		}
		return read, nil
	})
	return customers, keys, keyErrs, nil
}

// customersOf returns the plan's customers: its names, or those the BI
// platform lists for customers: all, each once, without the names dashcache
// does not accept (with a warning).
func (s *Scheduler) customersOf(ctx context.Context, p Plan, log zerolog.Logger) ([]string, error) {
	if !p.Customers.All {
		return p.Customers.Names, nil
	}
	names, err := s.customers(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan %q: listing the BI platform's customers: %w", p.Name, err)
	}
	customers := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	var skipped []string
	for _, c := range names {
		if validCustomer(c) != nil {
			skipped = append(skipped, c)
			continue
		}
		if !seen[c] {
			seen[c] = true
			customers = append(customers, c)
		}
	}
	if len(skipped) > 0 {
		log.Warn().Int("skipped", len(skipped)).Strs("examples", skipped[:min(len(skipped), 5)]).
			Msg("the BI platform listed customers whose names dashcache does not accept; skipping them")
	}
	return customers, nil
}

// planKeys returns the keys of plan p for customers as of today, each
// once: each of its reports over each of its presets (a partitioned
// report's over the months they touch: see dashcache.Served.Fills), and for
// recently_read the reports each customer read (read). A key that cannot
// be made, or a customer whose reads fail, is an error in errs, and the
// others are still returned.
func planKeys(p Plan, served dashcache.Served, customers []string, today time.Time, read func(customer string) ([]dashcache.ReportKey, error)) (keys []dashcache.ReportKey, errs []error) {
	seen := make(map[dashcache.ReportKey]bool)
	add := func(k dashcache.ReportKey) {
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	reports := p.reports()
	for _, c := range customers {
		for _, r := range p.Ranges {
			if r == RecentlyRead {
				ks, err := read(c)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				for _, k := range ks {
					if slices.Contains(reports, k.Report) {
						add(k)
					}
				}
				continue
			}
			k, err := dashcache.PresetKey(c, r, today)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s over %s: %w", c, r, err))
				continue
			}
			for _, report := range reports {
				k.Report = report
				for _, f := range served.Fills(k) {
					add(f)
				}
			}
		}
	}
	return keys, errs
}

// reports returns the plan's reports: its list, or the default report.
func (p Plan) reports() []string {
	if len(p.Reports) == 0 {
		return []string{""}
	}
	return p.Reports
}

// cronLogger adapts a zerolog.Logger to cron.Logger: cron's routine messages
// go to debug, a skipped firing to warn, errors (recovered panics) to error.
type cronLogger struct{ log zerolog.Logger }

func (l cronLogger) Info(msg string, kv ...any) {
	if msg == "skip" { // from cron.SkipIfStillRunning
		l.log.Warn().Msg("skipped a firing: the previous firing of this plan is still running")
		return
	}
	l.log.Debug().Fields(kv).Msg("cron: " + msg)
}

func (l cronLogger) Error(err error, msg string, kv ...any) {
	l.log.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}
