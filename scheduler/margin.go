package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
)

// warms is what this process knows of each plan's warm: when it last
// fired, whether a firing is running, which warm it saw on before its
// deadline, and which it saw done.
type warms struct {
	mu      sync.Mutex
	fired   map[string]time.Time // the latest firing, by plan
	running map[string]int       // firings running, by plan
	seen    map[string]time.Time // the firing whose warm was seen on before its deadline, by plan
	done    map[string]time.Time // the firing whose warm was seen done, by plan
}

func newWarms() *warms {
	return &warms{fired: map[string]time.Time{}, running: map[string]int{}, seen: map[string]time.Time{}, done: map[string]time.Time{}}
}

// fire records that plan fires at at; returned, that the firing returned.
func (w *warms) fire(plan string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fired[plan] = at
	w.seen[plan] = at
	w.running[plan]++
}

func (w *warms) returned(plan string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.running[plan]--
}

// warm is one firing's warm of a plan with a deadline.
type warm struct {
	fired, deadline time.Time
	running         bool // a firing of the plan is running in this process
}

// current returns the warm of plan that may be on at now: that of its
// latest firing (the one this process saw, or the one its schedule gives),
// unless it was seen done, or its deadline has passed and this process did
// not see it on before (after a restart, the warming queue's tasks may be
// anyone's).
func (w *warms) current(plan string, sched cron.Schedule, deadline clock, now time.Time) (warm, bool) {
	prev, _ := previous(sched, now)
	w.mu.Lock()
	defer w.mu.Unlock()
	wm := warm{fired: w.fired[plan], running: w.running[plan] > 0}
	if prev.After(wm.fired) {
		wm.fired = prev
	}
	if wm.fired.IsZero() || w.done[plan].Equal(wm.fired) {
		return warm{}, false
	}
	wm.deadline = deadline.after(wm.fired)
	if now.Before(wm.deadline) {
		w.seen[plan] = wm.fired
	} else if !w.seen[plan].Equal(wm.fired) {
		return warm{}, false
	}
	return wm, true
}

// finished records that the warm of plan's firing fired is done.
func (w *warms) finished(plan string, fired time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done[plan] = fired
}

// previous returns the latest firing of sched at or before now, within a
// day (a deadline is a time of day), for a cron expression; ok is false
// for none, for a plan firing more often than every minute, and for an
// @every plan, whose firings count from the scheduler's start.
func previous(sched cron.Schedule, now time.Time) (last time.Time, ok bool) {
	if _, spec := sched.(*cron.SpecSchedule); !spec {
		return time.Time{}, false
	}
	t := now.Add(-24 * time.Hour)
	for range 24*60 + 1 {
		t = sched.Next(t)
		if t.IsZero() || t.After(now) {
			return last, !last.IsZero()
		}
		last = t
	}
	return time.Time{}, false
}

var marginDesc = prometheus.NewDesc("dashcache_plan_deadline_margin_seconds",
	"For a warming plan with a deadline, while its warm is on (from its firing until the warming queue is first seen empty): "+
		"the deadline minus the projected finish, the warming queue's tasks at the back ends' rates and on the workers' slots; "+
		"below 0, the warm will not make its deadline, or has not. Read at each scrape.",
	[]string{"plan"}, nil)

// marginGauge is dashcache_plan_deadline_margin_seconds{plan}.
type marginGauge struct{ s *Scheduler }

func (g marginGauge) Describe(ch chan<- *prometheus.Desc) { ch <- marginDesc }

func (g marginGauge) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s := g.s
	now := s.now().In(s.zone)
	remaining := -1 // read once, when a plan needs it
	for _, name := range s.order {
		p := s.plans[name]
		c, ok, _ := p.deadline()
		if !ok {
			continue
		}
		wm, on := s.warms.current(name, s.schedules[name], c, now)
		if !on {
			continue
		}
		if remaining < 0 {
			n, err := s.remaining(ctx)
			if err != nil {
				s.log.Warn().Err(err).Msg("dashcache_plan_deadline_margin_seconds: reading the warming queue")
				return
			}
			remaining = n
		}
		if remaining == 0 && !wm.running {
			s.warms.finished(name, wm.fired)
			continue
		}
		z, err := s.sizeRemaining(ctx, p, now, remaining)
		if err != nil {
			s.log.Warn().Err(err).Str("plan", name).Msg("dashcache_plan_deadline_margin_seconds: reading the capacity")
			continue
		}
		margin := wm.deadline.Sub(z.Finish())
		ch <- prometheus.MustNewConstMetric(marginDesc, prometheus.GaugeValue, margin.Seconds(), name)
	}
}

// sizeRemaining sizes the warm left at now: the warming queue's tasks,
// shared among the plan's reports' back ends as the plan's keys are
// (each report has as many).
func (s *Scheduler) sizeRemaining(ctx context.Context, p Plan, now time.Time, tasks int) (Size, error) {
	z := Size{Plan: p.Name, Fires: now, Calls: map[string]int{}}
	reports := p.reports()
	for i, r := range reports {
		// Spread the tasks over the reports; the first ones take what is left.
		n := tasks / len(reports)
		if i < tasks%len(reports) {
			n++
		}
		z.Calls[s.backendOf(r)] += n
	}
	return s.withCapacity(ctx, z)
}
