package scheduler_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/scheduler"
)

// customers returns n customer names.
func customers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("c%04d", i)
	}
	return out
}

// capacity returns a Capacity function of one rule for every back end.
func capacity(rate int, window, latency time.Duration, slots int) func(context.Context, []string) (scheduler.Capacity, error) {
	return func(_ context.Context, backends []string) (scheduler.Capacity, error) {
		c := scheduler.Capacity{Backends: map[string]scheduler.Backend{}, Slots: slots, SlotsFrom: "--slots"}
		for _, b := range backends {
			c.Backends[b] = scheduler.Backend{Rate: rate, Window: window, Latency: latency}
			if latency > 0 {
				c.Backends[b] = scheduler.Backend{Rate: rate, Window: window, Latency: latency, LatencyFrom: "--latency"}
			}
		}
		if slots == 0 {
			c.SlotsFrom = ""
		}
		return c, nil
	}
}

// sixPresets: a plan of 500 customers (as the BI platform lists them) x
// the 6 presets x 2 reports, firing at 02:00 but not in January (where
// month_to_date and year_to_date are one range), to be done 5 minutes
// later: 6,000 calls.
const sixPresets = `
timezone: Europe/Berlin
plans:
  - name: nightly
    cron: "0 2 * 2-12 *"
    customers: all
    reports: [orders, revenue]
    ranges: [yesterday, last_7_days, last_30_days, month_to_date, previous_month, year_to_date]
    deadline: "02:05"
`

// twoReports are the reports sixPresets warms.
var twoReports = dashcache.Served{Named: []string{"orders", "revenue"}}

// TestProjectDeadline: a plan's size is its calls at the back end's rate
// (counted over 1.1 s) or on the workers' slots at its latency, whichever
// is longer, from its next firing; a plan that misses its deadline says
// the rate and the slots it needs.
func TestProjectDeadline(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		rate    int
		late    bool
		summary string
	}{
		{10, true, "6000 calls from 2026-12-06 02:00 CET take 11m0s, done 2026-12-06 02:11:00 CET, " +
			"6m0s after its deadline 2026-12-06 02:05 CET; it needs rate 22 (now 10) and 4 slots at 200ms (now 100)"},
		{22, false, "6000 calls from 2026-12-06 02:00 CET take 5m0s, done 2026-12-06 02:05:00 CET, " +
			"0s before its deadline 2026-12-06 02:05 CET"},
		{50, false, "6000 calls from 2026-12-06 02:00 CET take 2m12s, done 2026-12-06 02:02:12 CET, " +
			"2m48s before its deadline 2026-12-06 02:05 CET"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprint("rate ", c.rate), func(t *testing.T) {
			t.Parallel()
			s, err := scheduler.New(scheduler.Config{
				File:      file(t, sixPresets),
				Warmer:    &recorder{},
				Customers: func(context.Context) ([]string, error) { return customers(500), nil },
				Reports:   twoReports,
				Capacity:  capacity(c.rate, 1100*time.Millisecond, 200*time.Millisecond, 100),
				Now:       func() time.Time { return now },
			})
			if err != nil {
				t.Fatal(err)
			}
			z, err := s.Project(t.Context(), "nightly")
			if err != nil {
				t.Fatal(err)
			}
			if z.Customers != 500 || z.Ranges != 6 || z.Reports != 2 || z.Keys != 6000 || z.TotalCalls() != 6000 || z.Fresh != -1 {
				t.Errorf("size %+v, want 500 customers x 6 ranges x 2 reports = 6000 calls, freshness not known", z)
			}
			if z.Late() != c.late || z.Summary() != c.summary {
				t.Errorf("late %v, summary\n%s\nwant %v,\n%s", z.Late(), z.Summary(), c.late, c.summary)
			}
			if s, ok := z.BySlots(); !ok || s != 12*time.Second {
				t.Errorf("on the slots: %s, %v; want 6000 x 200ms / 100 = 12s", s, ok)
			}
			detail := strings.Join(z.Detail(), "\n")
			for _, want := range []string{
				"500 customers (listed by the BI platform) x 6 ranges x 2 reports: 6000 reports; which are fresh at the firing is not known",
				fmt.Sprintf("the default BI platform: 6000 calls at rate %d (%d in each 1.1s)", c.rate, c.rate),
				"at 200ms (--latency) on 100 slots (--slots): 12s",
			} {
				if !strings.Contains(detail, want) {
					t.Errorf("detail does not say %q:\n%s", want, detail)
				}
			}
		})
	}
}

// TestProjectSlotsAndFresh: the slots bound the warm when they are the
// slower, and reports the index holds fresh past the firing make no call.
func TestProjectSlotsAndFresh(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	fires := time.Date(2026, 12, 15, 2, 0, 0, 0, time.UTC)
	yesterday := func(c string) dashcache.ReportKey {
		k, err := dashcache.PresetKey(c, "previous_month", fires)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	s, err := scheduler.New(scheduler.Config{
		File: file(t, `
plans:
  - name: monthly
    cron: "0 2 15 * *"
    customers: [a, b, c, d]
    ranges: [previous_month, month_to_date]
    reports: [revenue, orders]
    deadline: "03:00"
`),
		Warmer:    &recorder{},
		Reports:   dashcache.Served{Named: []string{"orders", "revenue"}},
		BackendOf: func(r string) string { return map[string]string{"revenue": "warehouse", "orders": "shop"}[r] },
		Capacity:  capacity(100, time.Second, 30*time.Second, 2),
		Known: func(_ context.Context, customers []string, _, readSince time.Time) (scheduler.Known, error) {
			if len(customers) != 4 || !readSince.IsZero() {
				t.Errorf("Known(%q, readSince %s), want the 4 customers, no reads", customers, readSince)
			}
			a, b, c := yesterday("a"), yesterday("b"), yesterday("c")
			a.Report, b.Report, c.Report = "revenue", "revenue", "orders"
			return scheduler.Known{FreshUntil: map[dashcache.ReportKey]time.Time{
				a: fires.Add(time.Hour),    // fresh at the firing: no call
				b: fires.Add(-time.Minute), // stale by then
				c: fires.Add(24 * time.Hour),
			}}, nil
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	z, err := s.Project(t.Context(), "monthly")
	if err != nil {
		t.Fatal(err)
	}
	// 4 customers x 2 ranges x 2 reports = 16, 2 fresh: 7 calls to each back
	// end, at 30 s on 2 slots: 14 x 30 s / 2 = 3m30s, longer than 0.07 s at the rate.
	if z.Keys != 16 || z.Fresh != 2 || z.Calls["warehouse"] != 7 || z.Calls["shop"] != 7 || z.Duration() != 210*time.Second || z.Late() {
		t.Errorf("size %+v, duration %s; want 16 reports, 2 fresh, 7 calls to each back end, 3m30s, in time", z, z.Duration())
	}
	if want := "; 2 fresh past the firing, by the index, make no call"; !strings.Contains(z.Detail()[0], want) {
		t.Errorf("detail %q does not say %q", z.Detail()[0], want)
	}
	if len(z.Detail()) != 3 || !strings.HasPrefix(z.Detail()[1], "back end shop: 7 calls") || !strings.HasPrefix(z.Detail()[2], "back end warehouse: 7 calls") {
		t.Errorf("detail %q, want a line per back end", z.Detail())
	}
}

// TestProjectPartitions: a partitioned report's keys are the months its
// presets touch, each once: the 6 presets of a customer on 2026-12-15
// are the 12 months of 2026, and those the index holds fresh make no call.
func TestProjectPartitions(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	fires := time.Date(2026, 12, 15, 2, 0, 0, 0, time.UTC)
	s, err := scheduler.New(scheduler.Config{
		File: file(t, `
plans:
  - name: nightly
    cron: "0 2 15 * *"
    customers: [a, b]
    ranges: [yesterday, last_7_days, last_30_days, month_to_date, previous_month, year_to_date]
`),
		Warmer:   &recorder{},
		Reports:  dashcache.Served{Partitions: map[string]*dashcache.Partition{"": dashcache.SimulatorPartition}},
		Capacity: capacity(10, time.Second, 0, 0),
		Known: func(_ context.Context, customers []string, _, _ time.Time) (scheduler.Known, error) {
			fresh := map[dashcache.ReportKey]time.Time{}
			for m := time.January; m < time.December; m++ { // the closed months, backfilled
				for _, c := range customers {
					fresh[dashcache.MonthOf(dashcache.ReportKey{Customer: c}, dashcache.CivilDay(2026, m, 1))] = fires.Add(24 * time.Hour)
				}
			}
			return scheduler.Known{FreshUntil: fresh}, nil
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	z, err := s.Project(t.Context(), "nightly")
	if err != nil {
		t.Fatal(err)
	}
	if z.Keys != 24 || z.Fresh != 22 || z.TotalCalls() != 2 {
		t.Errorf("size %+v; want 24 months (12 a customer), 22 fresh, 2 calls", z)
	}
	if want := "2 customers x 6 ranges x 1 report: 24 reports (of a report partitioned by month, the months its ranges touch, each once)"; !strings.HasPrefix(z.Detail()[0], want) {
		t.Errorf("detail %q does not begin %q", z.Detail()[0], want)
	}
}

// TestProjectRecentlyRead: the reports a plan of recently_read asks for
// are those read within its read_within before now, when the index is
// known; else they cannot be known in advance.
func TestProjectRecentlyRead(t *testing.T) {
	t.Parallel()
	const plans = `
plans:
  - name: read
    cron: "0 3 * * *"
    customers: [acme, globex]
    ranges: [yesterday, recently_read]
    read_within: 2h
`
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	read := func(c, from, to string) dashcache.ReportKey {
		k, err := dashcache.ParseReportKey(c, from, to, now)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	known := func(_ context.Context, _ []string, _, readSince time.Time) (scheduler.Known, error) {
		if !readSince.Equal(now.Add(-2 * time.Hour)) {
			t.Errorf("reads asked since %s, want 2h before now", readSince)
		}
		return scheduler.Known{Read: map[string][]dashcache.ReportKey{
			"acme":   {read("acme", "2025-01-01", "2025-01-31"), read("acme", "2026-12-05", "2026-12-05")}, // the second is the firing's yesterday
			"globex": {read("globex", "2025-02-01", "2025-02-28")},
		}}, nil
	}
	for _, c := range []struct {
		name   string
		known  func(context.Context, []string, time.Time, time.Time) (scheduler.Known, error)
		keys   int
		lately int
		says   string
	}{
		{"with the index", known, 4, 2, "2 customers x 1 ranges x 1 report: 4 reports, 2 of them read within 2h0m0s; none fresh past the firing"},
		{"without", nil, 2, -1, "2 customers x 1 ranges x 1 report: 2 reports, and the ranges read within 2h0m0s, which cannot be known in advance"},
	} {
		s, err := scheduler.New(scheduler.Config{
			File: file(t, plans), Warmer: &recorder{}, Capacity: capacity(10, time.Second, 0, 0), Known: c.known,
			ReadSince: func(context.Context, string, time.Time) ([]dashcache.ReportKey, error) { return nil, nil },
			Now:       func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		z, err := s.Project(t.Context(), "read")
		if err != nil {
			t.Fatal(err)
		}
		if z.Keys != c.keys || z.ReadLately != c.lately || !strings.HasPrefix(z.Detail()[0], c.says) {
			t.Errorf("%s: %d reports, %d read lately, %q; want %d, %d, %q", c.name, z.Keys, z.ReadLately, z.Detail()[0], c.keys, c.lately, c.says)
		}
		if want := "its latency is not known (no worker has reported it; --latency gives it)"; !strings.Contains(z.Detail()[1], want) {
			t.Errorf("%s: %q does not say %q", c.name, z.Detail()[1], want)
		}
	}
}

// TestSizeLogged: the scheduler logs each plan's size at Start and at each
// firing, as a warning naming what it needs when it misses its deadline.
func TestSizeLogged(t *testing.T) {
	t.Parallel()
	logs := make(logLines, 100)
	s, err := scheduler.New(scheduler.Config{
		File:      file(t, sixPresets),
		Warmer:    &recorder{},
		Customers: func(context.Context) ([]string, error) { return customers(500), nil },
		Reports:   twoReports,
		Capacity:  capacity(10, 1100*time.Millisecond, 200*time.Millisecond, 100),
		Log:       zerolog.New(logs),
		Now:       func() time.Time { return time.Date(2026, 12, 15, 2, 0, 0, 0, time.UTC) }, // 03:00 in Berlin
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	line := waitLog(t, logs, "warming plan cannot finish by its deadline")
	for _, want := range []string{`"level":"warn"`, `"plan":"nightly"`, `"calls":6000`, "from 2026-12-16 02:00 CET", "it needs rate 22 (now 10)"} {
		if !strings.Contains(line, want) {
			t.Errorf("the size logged at start does not say %s:\n%s", want, line)
		}
	}
	if _, err := s.RunPlan(t.Context(), "nightly"); err != nil {
		t.Fatal(err)
	}
	line = waitLog(t, logs, "warming plan sized") // 23 hours before its deadline
	if !strings.Contains(line, "from 2026-12-15 03:00 CET") || !strings.Contains(line, "before its deadline 2026-12-16 02:05 CET") {
		t.Errorf("the size logged at the firing is not of the firing:\n%s", line)
	}
}

// margins returns dashcache_plan_deadline_margin_seconds by plan.
func margins(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "dashcache_plan_deadline_margin_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	return out
}

// TestDeadlineMargin: while a plan's warm is on, its margin is its deadline
// less the time the warming queue's tasks take from now; once the queue is
// seen empty the warm is done and the margin gone; after a restart past the
// deadline, the queue's tasks are not taken for the plan's.
func TestDeadlineMargin(t *testing.T) {
	t.Parallel()
	const plans = `
plans:
  - name: nightly
    cron: "0 2 * * *"
    customers: [acme]
    ranges: [yesterday]
    deadline: "06:00"
  - name: no-deadline
    cron: "0 2 * * *"
    customers: [acme]
    ranges: [yesterday]
`
	var now time.Time
	tasks := 0
	newScheduler := func() *prometheus.Registry {
		reg := prometheus.NewRegistry()
		_, err := scheduler.New(scheduler.Config{
			File: file(t, plans), Warmer: &recorder{},
			Capacity:   capacity(10, time.Second, 0, 0),
			Remaining:  func(context.Context) (int, error) { return tasks, nil },
			Registerer: reg,
			Now:        func() time.Time { return now },
		})
		if err != nil {
			t.Fatal(err)
		}
		return reg
	}
	at := func(h int) time.Time { return time.Date(2026, 12, 15, h, 0, 0, 0, time.UTC) }
	reg := newScheduler()

	now, tasks = at(3), 36000 // an hour's calls at 10/s: done 04:00
	if got := margins(t, reg); len(got) != 1 || got["nightly"] != 7200 {
		t.Errorf("at 03:00 with an hour's tasks: %v, want nightly 2h before its deadline", got)
	}
	tasks = 5 * 36000 // done 08:00
	if got := margins(t, reg); got["nightly"] != -7200 {
		t.Errorf("at 03:00 with 5 hours' tasks: %v, want nightly 2h late", got)
	}
	now = at(7)
	if got := margins(t, reg); got["nightly"] != -6*3600 {
		t.Errorf("at 07:00 with 5 hours' tasks: %v, want nightly 6h late", got)
	}
	if got := margins(t, newScheduler()); len(got) != 0 { // a scheduler started past the deadline
		t.Errorf("a scheduler started at 07:00: %v, want no margin: the queue's tasks may be anyone's", got)
	}
	tasks = 0
	if got := margins(t, reg); len(got) != 0 {
		t.Errorf("with the queue empty: %v, want the warm done", got)
	}
	tasks = 10
	if got := margins(t, reg); len(got) != 0 {
		t.Errorf("with tasks again after the warm was done: %v, want none", got)
	}
	now, tasks = at(26), 36000 // the next night's firing
	if got := margins(t, reg); got["nightly"] != 3*3600 {
		t.Errorf("the next night at 02:00: %v, want nightly 3h before its deadline", got)
	}
}
