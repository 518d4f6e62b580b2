package scheduler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/scheduler"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a fake Warmer: it records every key, answers duplicate for the
// keys in dup and fails those in fail.
type recorder struct {
	mu   sync.Mutex
	keys []string
	dup  map[string]bool
	fail map[string]bool
}

func (r *recorder) Warm(_ context.Context, k dashcache.ReportKey, _ dashcache.Refresh) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, k.String())
	if r.fail[k.String()] {
		return false, fmt.Errorf("enqueueing the fill task of %s: redis: connection refused", k) // as jobs.Enqueuer
	}
	return !r.dup[k.String()], nil
}

// warmFunc is a Warmer made of a function.
type warmFunc func(ctx context.Context, k dashcache.ReportKey) (bool, error)

func (f warmFunc) Warm(ctx context.Context, k dashcache.ReportKey, _ dashcache.Refresh) (bool, error) {
	return f(ctx, k)
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.keys)
}

// logLines is a log destination that hands each line to the test.
type logLines chan string

func (l logLines) Write(p []byte) (int, error) {
	select {
	case l <- string(p):
	default: // a test that does not read does not block the scheduler
	}
	return len(p), nil
}

// waitLog waits, up to 5 s, for a log line containing want.
func waitLog(t *testing.T, l logLines, want string) string {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case line := <-l:
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no log line containing %q within 5 s", want)
		}
	}
}

func file(t *testing.T, yaml string) *scheduler.File {
	t.Helper()
	f, err := scheduler.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRunPlanZone(t *testing.T) {
	t.Parallel()
	const plans = `
plans:
  - name: nightly
    cron: "0 2 * * *"
    customers: [acme, globex]
    ranges: [yesterday, month_to_date]
`
	// 23:30 UTC on Feb 28 is 00:30 on Mar 1 in Berlin.
	now := time.Date(2025, 2, 28, 23, 30, 0, 0, time.UTC)
	berlinKeys := []string{
		"acme|2025-02-28|2025-02-28", "acme|2025-03-01|2025-03-01",
		"globex|2025-02-28|2025-02-28", "globex|2025-03-01|2025-03-01",
	}
	utcKeys := []string{
		"acme|2025-02-27|2025-02-27", "acme|2025-02-01|2025-02-28",
		"globex|2025-02-27|2025-02-27", "globex|2025-02-01|2025-02-28",
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		timezone string
		zone     *time.Location
		want     []string
	}{
		{"file's zone", "timezone: Europe/Berlin\n", nil, berlinKeys},
		{"no zone: UTC", "", nil, utcKeys},
		{"the file's zone over DefaultZone", "timezone: Europe/Berlin\n", time.UTC, berlinKeys},
		{"DefaultZone when the file names none", "", berlin, berlinKeys},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var r recorder
			s, err := scheduler.New(scheduler.Config{
				File:        file(t, c.timezone+plans),
				DefaultZone: c.zone,
				Warmer:      &r,
				Now:         func() time.Time { return now },
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.RunPlan(t.Context(), "nightly")
			if err != nil {
				t.Fatal(err)
			}
			if got := r.got(); !slices.Equal(got, c.want) {
				t.Errorf("enqueued %q, want %q", got, c.want)
			}
			if res.Enqueued != 4 || res.Duplicates != 0 || len(res.Errors) != 0 {
				t.Errorf("Result = %+v, want 4 enqueued", res)
			}
		})
	}
}

func TestRunPlanDuplicatesAndFailures(t *testing.T) {
	t.Parallel()
	r := recorder{
		dup:  map[string]bool{"acme|2025-06-14|2025-06-14": true, "globex|2025-06-14|2025-06-14": true},
		fail: map[string]bool{"acme|2025-06-08|2025-06-14": true},
	}
	logs := make(logLines, 100)
	s, err := scheduler.New(scheduler.Config{
		File: file(t, `
plans:
  - name: nightly
    cron: "@daily"
    customers: [acme, globex, initech]
    ranges: [yesterday, last_7_days]
`),
		Warmer: &r,
		Log:    zerolog.New(logs),
		Now:    func() time.Time { return time.Date(2025, 6, 15, 8, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RunPlan(t.Context(), "nightly")
	if err != nil {
		t.Fatal(err)
	}
	// The failing key (the second) did not stop the four after it.
	if got := len(r.got()); got != 6 {
		t.Errorf("%d keys tried, want 6: %q", got, r.got())
	}
	if res.Enqueued != 3 || res.Duplicates != 2 || len(res.Errors) != 1 {
		t.Fatalf("Result = %+v, want 3 enqueued, 2 duplicates, 1 error", res)
	}
	if msg := res.Errors[0].Error(); !strings.Contains(msg, "acme|2025-06-08|2025-06-14") || !strings.Contains(msg, "connection refused") {
		t.Errorf("error %q does not name the key and the cause", msg)
	}

	var line struct {
		Component string `json:"component"`
		Plan      string `json:"plan"`
		Enqueued  int    `json:"enqueued"`
		Duplicate int    `json:"duplicate"`
		Failed    int    `json:"failed"`
	}
	if err := json.Unmarshal([]byte(waitLog(t, logs, "warming plan fired")), &line); err != nil {
		t.Fatal(err)
	}
	if line.Component != "scheduler" || line.Plan != "nightly" || line.Enqueued != 3 || line.Duplicate != 2 || line.Failed != 1 {
		t.Errorf("log line %+v", line)
	}
}

func TestRunPlanAllCustomers(t *testing.T) {
	t.Parallel()
	const plans = `
plans:
  - name: everyone
    cron: "@daily"
    customers: all
    ranges: [previous_month]
`
	now := func() time.Time { return time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC) }

	t.Run("listed", func(t *testing.T) {
		t.Parallel()
		var r recorder
		logs := make(logLines, 100)
		s, err := scheduler.New(scheduler.Config{
			File:   file(t, plans),
			Warmer: &r,
			Customers: func(context.Context) ([]string, error) {
				return []string{"acme", "bad/name", "globex", "acme", ""}, nil
			},
			Log: zerolog.New(logs),
			Now: now,
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := s.RunPlan(t.Context(), "everyone")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"acme|2024-12-01|2024-12-31", "globex|2024-12-01|2024-12-31"}
		if got := r.got(); !slices.Equal(got, want) {
			t.Errorf("enqueued %q, want %q", got, want)
		}
		if res.Enqueued != 2 || len(res.Errors) != 0 {
			t.Errorf("Result = %+v", res)
		}
		if line := waitLog(t, logs, "skipping them"); !strings.Contains(line, `"skipped":2`) || !strings.Contains(line, "bad/name") {
			t.Errorf("warning %s", line)
		}
	})

	t.Run("list fails", func(t *testing.T) {
		t.Parallel()
		var r recorder
		s, err := scheduler.New(scheduler.Config{
			File:      file(t, plans),
			Warmer:    &r,
			Customers: func(context.Context) ([]string, error) { return nil, errors.New("BI platform: transient (HTTP 503)") },
			Now:       now,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.RunPlan(t.Context(), "everyone"); err == nil || !strings.Contains(err.Error(), "HTTP 503") {
			t.Errorf("RunPlan: %v, want the customer list's error", err)
		}
		if got := r.got(); len(got) != 0 {
			t.Errorf("enqueued %q", got)
		}
	})
}

// TestRunPlanRecentlyRead: ranges: [recently_read] warms each customer's
// reports read within the plan's read_within, next to its presets, once
// each.
func TestRunPlanRecentlyRead(t *testing.T) {
	t.Parallel()
	const plans = `
plans:
  - name: read
    cron: "@hourly"
    customers: [acme, globex]
    ranges: [recently_read, yesterday]
    read_within: 6h
`
	now := time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)
	reads := map[string][]string{
		"acme": {"acme|2024-12-01|2024-12-31", "acme|2025-01-09|2025-01-09"}, // the second is yesterday too
	}
	var asked []string
	var r recorder
	s, err := scheduler.New(scheduler.Config{
		File:   file(t, plans),
		Warmer: &r,
		ReadSince: func(_ context.Context, customer string, since time.Time) ([]dashcache.ReportKey, error) {
			asked = append(asked, customer+" since "+since.Format(time.RFC3339))
			var keys []dashcache.ReportKey
			for _, c := range reads[customer] {
				k, err := dashcache.ParseCanonical(c)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
			return keys, nil
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunPlan(t.Context(), "read"); err != nil {
		t.Fatal(err)
	}
	want := []string{"acme|2024-12-01|2024-12-31", "acme|2025-01-09|2025-01-09", "globex|2025-01-09|2025-01-09"}
	if got := r.got(); !slices.Equal(got, want) {
		t.Errorf("enqueued %q, want %q", got, want)
	}
	if wantAsked := []string{"acme since 2025-01-10T06:00:00Z", "globex since 2025-01-10T06:00:00Z"}; !slices.Equal(asked, wantAsked) {
		t.Errorf("asked for reads %q, want %q", asked, wantAsked)
	}

	if _, err := scheduler.New(scheduler.Config{File: file(t, plans), Warmer: &r}); err == nil || !strings.Contains(err.Error(), "ReadSince is required") {
		t.Errorf("New without ReadSince: %v", err)
	}
}

func TestRunPlanUnknown(t *testing.T) {
	t.Parallel()
	var r recorder
	s, err := scheduler.New(scheduler.Config{
		File:   file(t, "plans: [{name: nightly, cron: '@daily', customers: [acme], ranges: [yesterday]}]"),
		Warmer: &r,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunPlan(t.Context(), "weekly"); err == nil || !strings.Contains(err.Error(), `"nightly"`) {
		t.Errorf("RunPlan(weekly): %v, want an error listing the plans", err)
	}
}

func TestRunPlanTimeout(t *testing.T) {
	t.Parallel()
	calls := 0
	s, err := scheduler.New(scheduler.Config{
		File: file(t, "plans: [{name: a, cron: '@daily', customers: [acme, globex, initech], ranges: [yesterday]}]"),
		// A hung Redis: the call returns only when its context ends.
		Warmer: warmFunc(func(ctx context.Context, _ dashcache.ReportKey) (bool, error) {
			calls++
			<-ctx.Done()
			return false, ctx.Err()
		}),
		FiringTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.RunPlan(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(res.Errors) != 2 || !strings.Contains(res.Errors[1].Error(), "stopped after 1 of 3 keys") ||
		!errors.Is(res.Errors[1], context.DeadlineExceeded) {
		t.Errorf("%d calls, Result %+v; want 1 call, then stopped", calls, res)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	var r recorder
	all := file(t, "plans: [{name: a, cron: '@daily', customers: all, ranges: [yesterday]}]")
	cases := []struct {
		name string
		cfg  scheduler.Config
		want string
	}{
		{"no file", scheduler.Config{Warmer: &r}, "File is required"},
		{"no Warmer", scheduler.Config{File: all, Customers: func(context.Context) ([]string, error) { return nil, nil }}, "Warmer is required"},
		{"all without Customers", scheduler.Config{File: all, Warmer: &r}, `plan "a" uses customers: all`},
		{"invalid File built in code", scheduler.Config{File: &scheduler.File{Plans: []scheduler.Plan{{Name: "a", Cron: "@daily"}}}, Warmer: &r}, "ranges is required"},
	}
	for _, c := range cases {
		if _, err := scheduler.New(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New: %v, want an error containing %q", c.name, err, c.want)
		}
	}
}

func TestCronFires(t *testing.T) {
	t.Parallel()
	fired := make(chan string, 10)
	s, err := scheduler.New(scheduler.Config{
		File: file(t, "timezone: Europe/Berlin\nplans: [{name: often, cron: '@every 1s', customers: [acme], ranges: [yesterday]}]"),
		Warmer: warmFunc(func(_ context.Context, k dashcache.ReportKey) (bool, error) {
			select {
			case fired <- k.String():
			default:
			}
			return true, nil
		}),
		Log: zerolog.New(zerolog.NewTestWriter(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // twice is safe
		if err := s.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case k := <-fired:
		if !strings.HasPrefix(k, "acme|") {
			t.Errorf("fired %q", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the @every 1s plan did not fire within 5 s")
	}
	for range 2 { // twice is safe
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Start(t.Context()); err == nil {
		t.Error("Start after Shutdown: no error")
	}
}

func TestOverlappingFiringSkippedAndShutdownDeadline(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 10)
	logs := make(logLines, 100)
	s, err := scheduler.New(scheduler.Config{
		File: file(t, "plans: [{name: slow, cron: '@every 1s', customers: [acme], ranges: [yesterday]}]"),
		// Hangs until its firing is cancelled.
		Warmer: warmFunc(func(ctx context.Context, _ dashcache.ReportKey) (bool, error) {
			started <- struct{}{}
			<-ctx.Done()
			return false, ctx.Err()
		}),
		Log: zerolog.New(logs).Level(zerolog.InfoLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The next tick, a second after the first firing, finds it still running.
	line := waitLog(t, logs, "skipped a firing")
	if !strings.Contains(line, `"plan":"slow"`) {
		t.Errorf("skip line %s does not name the plan", line)
	}
	if n := len(started); n != 1 {
		t.Errorf("%d firings reached Warm, want 1", n)
	}

	// Shutdown gives up at its deadline and cancels the hung firing...
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	// ...which then returns, so a second Shutdown sees it done.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel2()
	if err := s.Shutdown(ctx2); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	t.Parallel()
	var r recorder
	s, err := scheduler.New(scheduler.Config{
		File:   file(t, "plans: [{name: a, cron: '@every 1s', customers: [acme], ranges: [yesterday]}]"),
		Warmer: &r,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

// TestRunPlanReports: a plan's reports are warmed for each customer and
// range; a report the catalogue does not have is refused by New.
func TestRunPlanReports(t *testing.T) {
	t.Parallel()
	const plans = `
plans:
  - name: dashboards
    cron: "@daily"
    customers: [acme]
    reports: [revenue, orders]
    ranges: [yesterday, previous_month]
`
	var r recorder
	s, err := scheduler.New(scheduler.Config{File: file(t, plans), Warmer: &r, Reports: dashcache.Served{Named: []string{"orders", "revenue"}},
		Now: func() time.Time { return time.Date(2025, 1, 10, 0, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunPlan(t.Context(), "dashboards"); err != nil {
		t.Fatal(err)
	}
	want := []string{"revenue|acme|2025-01-09|2025-01-09", "orders|acme|2025-01-09|2025-01-09",
		"revenue|acme|2024-12-01|2024-12-31", "orders|acme|2024-12-01|2024-12-31"}
	if got := r.got(); !slices.Equal(got, want) {
		t.Errorf("enqueued %q, want %q", got, want)
	}
	if _, err := scheduler.New(scheduler.Config{File: file(t, plans), Warmer: &r, Reports: dashcache.Served{Named: []string{"revenue"}}}); err == nil ||
		!strings.Contains(err.Error(), `report "orders" is not in the report catalogue`) {
		t.Errorf("a plan naming a report not in the catalogue: %v", err)
	}
	// Without a default report, a plan must name its reports, and cannot
	// list the customers without a BI platform that lists them.
	noDefault := dashcache.Served{Named: []string{"orders", "revenue"}, NoDefault: true}
	if _, err := scheduler.New(scheduler.Config{File: file(t, plans), Warmer: &r, Reports: noDefault}); err != nil {
		t.Errorf("a plan naming its reports, without a default report: %v", err)
	}
	unnamed := "plans:\n  - {name: p, cron: \"@daily\", customers: [acme], ranges: [yesterday]}\n"
	if _, err := scheduler.New(scheduler.Config{File: file(t, unnamed), Warmer: &r, Reports: noDefault}); err == nil ||
		!strings.Contains(err.Error(), `plan "p": reports is required: there is no default report`) {
		t.Errorf("a plan of the default report, without one: %v", err)
	}
	all := "plans:\n  - {name: p, cron: \"@daily\", customers: all, reports: [orders], ranges: [yesterday]}\n"
	if _, err := scheduler.New(scheduler.Config{File: file(t, all), Warmer: &r, Reports: noDefault}); err == nil ||
		!strings.Contains(err.Error(), "no BI platform lists the customers") {
		t.Errorf("customers: all without a list: %v", err)
	}
}
