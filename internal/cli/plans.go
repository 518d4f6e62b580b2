package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/scheduler"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// runPlans is the one-shot role of the warming plans: "plans check" sizes
// each plan of DASHCACHE_SCHEDULE_FILE at its next firing (scheduler
// Project: its reports, less those fresh by then, as BI calls at the
// fleet's rate and on the workers' slots at the back end's latency), prints
// a line and its detail per plan, and fails if a plan cannot finish by its
// deadline, or cannot be sized.
func runPlans(ctx context.Context, cfg Config, log zerolog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dashcache plans check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var given capacityGiven
	fs.DurationVar(&given.latency, "latency", 0, "one BI call's time, for every back end (default: each back end's p50, as the workers report it)")
	fs.IntVar(&given.slots, "slots", 0, "tasks the workers run at once (default: the live workers' concurrency, summed)")
	if len(args) == 0 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: dashcache plans check [--latency 2s] [--slots 40]")
		fs.PrintDefaults()
		return ErrUsage
	}
	err := fs.Parse(args[1:])
	if err == nil && (given.latency < 0 || given.slots < 0) {
		err = errors.New("--latency and --slots must not be negative")
	}
	if err := checkArgs(fs, err); err != nil {
		return err
	}
	o, err := openQueue(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer o.close()
	def, err := defaultSource(cfg, log)
	if err != nil {
		return err
	}
	sc, err := newPlans(cfg, o.r, o.queue, o.bi, def, given, nil, log)
	if err != nil {
		return err
	}
	var late, unsized []string
	for _, name := range sc.Plans() {
		z, err := sc.Project(ctx, name)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: not sized: %v\n", name, err)
			unsized = append(unsized, name)
			continue
		}
		state := "ok  "
		if z.Late() {
			state = "FAIL"
			late = append(late, name)
		}
		fmt.Fprintf(stdout, "%s %s: %s\n", state, name, z.Summary())
		for _, line := range z.Detail() {
			fmt.Fprintf(stdout, "     %s\n", line)
		}
	}
	var errs []error
	if len(late) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d plans cannot finish by their deadline: %s", len(late), len(sc.Plans()), strings.Join(late, ", ")))
	}
	if len(unsized) > 0 {
		errs = append(errs, fmt.Errorf("%d of %d plans could not be sized: %s", len(unsized), len(sc.Plans()), strings.Join(unsized, ", ")))
	}
	return errors.Join(errs...)
}

// capacityGiven is what plans check was told of the capacity; zero fields
// are read from the fleet.
type capacityGiven struct {
	latency time.Duration
	slots   int
}

// newPlans returns the scheduler of DASHCACHE_SCHEDULE_FILE's plans, not
// started: the customers of plans with customers: all are those def
// (defaultSource's) lists, none without one; plans are sized with the
// fleet's state in r, the rates bi enforces and given's overrides, and
// reg receives their deadline margins.
func newPlans(cfg Config, r *redisParts, queue *jobs.Enqueuer, bi *guard.Guard, def provider.Source, given capacityGiven,
	reg prometheus.Registerer, log zerolog.Logger) (*scheduler.Scheduler, error) {
	file, err := scheduler.LoadFile(cfg.ScheduleFile)
	if err != nil {
		return nil, fmt.Errorf("DASHCACHE_SCHEDULE_FILE: %w", err)
	}
	var customers func(context.Context) ([]string, error)
	if def != nil {
		customers = func(ctx context.Context) (customers []string, err error) {
			err = bi.Do(ctx, "", func(ctx context.Context) error { // a BI call too
				customers, err = def.Customers(ctx)
				return err
			})
			return customers, err
		}
	}
	inspector := asynq.NewInspectorFromRedisClient(r.queue)
	return scheduler.New(scheduler.Config{
		File:        file,
		DefaultZone: cfg.Zone,
		Warmer:      queue,
		Customers:   customers,
		ReadSince:   r.store.Index.ReadSince,
		Reports:     cfg.served(),
		Log:         log,
		Now:         r.clock.Now,
		Capacity:    capacityOf(r.store.Guards, bi, inspector, given),
		BackendOf:   bi.Backend,
		Known: func(ctx context.Context, customers []string, now, readSince time.Time) (scheduler.Known, error) {
			k, err := r.store.Index.Known(ctx, customers, now, readSince)
			return scheduler.Known{FreshUntil: k.FreshUntil, Read: k.Read}, err
		},
		Remaining:  warmingLeft(inspector),
		Registerer: reg,
	})
}

// capacityOf returns what warms can use: each back end's rate (bi's,
// counted over store.RateWindow), its latency (given, else the p50 the
// workers report), and the workers' slots (given, else the concurrency of
// the live workers that take warming tasks).
func capacityOf(guards *store.GuardState, bi *guard.Guard, inspector *asynq.Inspector, given capacityGiven) func(context.Context, []string) (scheduler.Capacity, error) {
	return func(ctx context.Context, backends []string) (scheduler.Capacity, error) {
		c := scheduler.Capacity{Backends: map[string]scheduler.Backend{}, Slots: given.slots, SlotsFrom: "--slots"}
		for _, name := range backends {
			b := scheduler.Backend{Rate: bi.Rate(name), Window: store.RateWindow, Latency: given.latency, LatencyFrom: "--latency"}
			if given.latency == 0 {
				l, err := guards.Latency(ctx, name)
				if err != nil {
					return scheduler.Capacity{}, err
				}
				b.Latency, b.LatencyFrom = 0, "no worker has reported it"
				if l.Calls > 0 {
					b.Latency, b.LatencyFrom = l.P50, fmt.Sprintf("p50 of %d calls", l.Calls)
				}
			}
			c.Backends[name] = b
		}
		if given.slots == 0 {
			servers, err := inspector.Servers()
			if err != nil {
				return scheduler.Capacity{}, fmt.Errorf("listing the workers: %w", err)
			}
			workers := 0
			for _, s := range servers {
				if _, ok := s.Queues[jobs.QueueWarming]; ok {
					c.Slots += s.Concurrency
					workers++
				}
			}
			switch workers {
			case 0:
				c.SlotsFrom = "no live worker"
			case 1:
				c.SlotsFrom = "1 live worker"
			default:
				c.SlotsFrom = fmt.Sprintf("%d live workers", workers)
			}
		}
		return c, nil
	}
}

// warmingLeft returns how many tasks the warming queue holds: pending,
// running, or waiting to run or to retry.
func warmingLeft(inspector *asynq.Inspector) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		q, err := inspector.GetQueueInfo(jobs.QueueWarming)
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return 0, nil // nothing was ever enqueued on it
		}
		if err != nil {
			return 0, fmt.Errorf("reading the warming queue: %w", err)
		}
		return q.Pending + q.Active + q.Scheduled + q.Retry, nil
	}
}
