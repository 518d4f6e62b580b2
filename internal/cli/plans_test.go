package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/robfig/cron/v3"
)

// customersServer is a BI platform that lists n customers and counts what
// it is asked.
type customersServer struct {
	*httptest.Server
	lists, queries atomic.Int64
}

func newCustomersServer(t *testing.T, n int) *customersServer {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("customer-%04d", i)
	}
	b := &customersServer{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/customers" {
			b.lists.Add(1)
			json.NewEncoder(w).Encode(names)
			return
		}
		b.queries.Add(1)
		http.Error(w, `{"error":"no reports here"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(b.Close)
	return b
}

// writePlans writes a warming plan file and returns its path.
func writePlans(t *testing.T, plans string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(path, []byte(plans), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// plansCheck runs dashcache plans check with env and args, and returns
// what it printed.
func plansCheck(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := Run(t.Context(), append([]string{"plans", "check"}, args...), func(k string) string { return env[k] }, &out, io.Discard)
	t.Logf("dashcache plans check %s (rate %s): %v\n%s", strings.Join(args, " "), env["DASHCACHE_PROVIDER_RATE"], err, out.String())
	return out.String(), err
}

// TestPlansCheckDeadline (issue 19): a plan of 1,000 customers (as the BI
// platform lists them) x 6 presets, to be done 5 minutes after it fires,
// with BI calls of 200 ms on 100 slots: at rate 10 it cannot finish by its
// deadline, and the check fails naming the plan and the rate it needs; at
// rate 50 it passes, saying when the warm is done. Sizing asks the BI
// platform for its customers, once, and for no report.
func TestPlansCheckDeadline(t *testing.T) {
	redisURL, _ := redistest.URLClient(t)
	bi := newCustomersServer(t, 1000)
	// Not in January, where month_to_date and year_to_date are one range.
	plans := writePlans(t, `
timezone: Europe/Berlin
plans:
  - name: nightly
    cron: "0 2 * 2-12 *"
    customers: all
    ranges: [yesterday, last_7_days, last_30_days, month_to_date, previous_month, year_to_date]
    deadline: "02:05"
`)
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     redisURL,
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_SCHEDULE_FILE": plans,
	}
	// The next firing's day and zone (CET or CEST), as the check gives them.
	firing := regexp.MustCompile(`^\S+ +nightly: \d+ calls from (\d{4}-\d\d-\d\d) 02:00 (CES?T) `)
	for _, c := range []struct {
		rate string
		ok   bool
		want string // day, zone
	}{
		{"10", false, "FAIL nightly: 6000 calls from %[1]s 02:00 %[2]s take 11m0s, done %[1]s 02:11:00 %[2]s, 6m0s after its deadline %[1]s 02:05 %[2]s; " +
			"it needs rate 22 (now 10) and 4 slots at 200ms (now 100)"},
		{"50", true, "ok   nightly: 6000 calls from %[1]s 02:00 %[2]s take 2m12s, done %[1]s 02:02:12 %[2]s, 2m48s before its deadline %[1]s 02:05 %[2]s"},
	} {
		env["DASHCACHE_PROVIDER_RATE"] = c.rate
		lists := bi.lists.Load()
		out, err := plansCheck(t, env, "--latency", "200ms", "--slots", "100")
		if c.ok != (err == nil) {
			t.Errorf("rate %s: %v; want it to pass: %v", c.rate, err, c.ok)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "1 of 1 plans cannot finish by their deadline: nightly")) {
			t.Errorf("rate %s: %v; want it to name the plan that cannot finish", c.rate, err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		m := firing.FindStringSubmatch(lines[0])
		if len(lines) != 3 || m == nil {
			t.Fatalf("rate %s: output\n%s\nwant a line naming the plan's firing, and two more", c.rate, out)
		}
		if want := fmt.Sprintf(c.want, m[1], m[2]); lines[0] != want {
			t.Errorf("rate %s: %s\nwant %s", c.rate, lines[0], want)
		}
		for _, want := range []string{
			"     1000 customers (listed by the BI platform) x 6 ranges x 1 report: 6000 reports; none fresh past the firing, by the index",
			"     the default BI platform: 6000 calls at rate " + c.rate + " (" + c.rate + " in each 1.1s): ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("rate %s: the output does not say %q", c.rate, want)
			}
		}
		if got := bi.lists.Load() - lists; got != 1 {
			t.Errorf("rate %s: the BI platform listed its customers %d times, want once", c.rate, got)
		}
	}
	if bi.queries.Load() != 0 {
		t.Errorf("the check asked the BI platform for %d reports, want none", bi.queries.Load())
	}

	for _, args := range [][]string{{"--slots", "-1"}, {"--latency", "fast"}, {"extra"}} {
		if _, err := plansCheck(t, env, args...); err != ErrUsage {
			t.Errorf("plans check %q: %v, want a usage error", args, err)
		}
	}
	if err := Run(t.Context(), []string{"plans"}, func(k string) string { return env[k] }, io.Discard, io.Discard); err != ErrUsage {
		t.Errorf("plans without check: %v, want a usage error", err)
	}
	delete(env, "DASHCACHE_SCHEDULE_FILE")
	if _, err := plansCheck(t, env); err == nil || !strings.Contains(err.Error(), "DASHCACHE_SCHEDULE_FILE") {
		t.Errorf("without a plan file: %v, want an error naming DASHCACHE_SCHEDULE_FILE", err)
	}
}

// TestPlansCheckReadsTheFleet: without --latency and --slots, a plan is
// sized at the latency the workers report and on the live workers' slots,
// and the reports the index holds fresh past the firing make no call.
func TestPlansCheckReadsTheFleet(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	ctx := t.Context()
	st := store.New(rdb)
	if err := st.Guards.ReportLatency(ctx, "", store.Latency{P50: 2 * time.Second, P99: 4 * time.Second, Calls: 50, At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// 3 customers' previous month, filled now: fresh for 7 days.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	sched, err := cron.ParseStandard("0 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	next, now := sched.Next(time.Now().In(berlin)), time.Now()
	for _, c := range []string{"c1", "c2", "c3"} {
		k, err := dashcache.PresetKey(c, "previous_month", next)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Index.IndexFill(ctx, k, now, now.Add(dashcache.ClosedTTL+dashcache.StaleFor)); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"DASHCACHE_REDIS_URL":          redisURL,
		"DASHCACHE_LISTEN":             "127.0.0.1:0",
		"DASHCACHE_WORKER_CONCURRENCY": "7",
		"DASHCACHE_SCHEDULE_FILE": writePlans(t, `
timezone: Europe/Berlin
plans:
  - name: nightly
    cron: "0 2 * * *"
    customers: [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9]
    ranges: [previous_month, last_7_days]
    deadline: "02:01"
`),
	}
	startRole(t, "worker", env)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if !wait.Until(10*time.Second, func() bool { s, err := insp.Servers(); return err == nil && len(s) == 1 }) {
		t.Fatal("the worker is not listed by asynq within 10 s")
	}

	// 20 reports, 3 fresh: 17 calls of 2 s on 7 slots: 4.9 s, longer
	// than at the rate (1.9 s).
	out, err := plansCheck(t, env)
	if err != nil {
		t.Errorf("plans check: %v", err)
	}
	for _, want := range []string{
		"ok   nightly: 17 calls from " + next.Format("2006-01-02 15:04 MST") + " take 5s, done " + next.Add(4857*time.Millisecond).Round(time.Second).Format("2006-01-02 15:04:05 MST") + ", 55s before its deadline",
		"     10 customers x 2 ranges x 1 report: 20 reports; 3 fresh past the firing, by the index, make no call\n",
		"     the default BI platform: 17 calls at rate 10 (10 in each 1.1s): 2s; at 2s (p50 of 50 calls) on 7 slots (1 live worker): 5s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output does not say %q", want)
		}
	}
}

// TestSchedulerExportsDeadlineMargin: the scheduler role exports, for a
// plan with a deadline whose warm is on, its deadline less the projected
// finish of the warming queue's tasks.
func TestSchedulerExportsDeadlineMargin(t *testing.T) {
	redisURL, _ := redistest.URLClient(t)
	deadline := time.Now().UTC().Add(2 * time.Hour).Format("15:04") // 1h59m-2h after the firing
	env := map[string]string{
		"DASHCACHE_REDIS_URL": redisURL,
		"DASHCACHE_LISTEN":    "127.0.0.1:0",
		"DASHCACHE_SCHEDULE_FILE": writePlans(t, `
plans:
  - name: often
    cron: "@every 1s"
    customers: [acme]
    ranges: [yesterday]
    deadline: "`+deadline+`"
`),
	}
	addr := startRole(t, "scheduler", env) // no worker: the task stays queued
	const sample = `dashcache_plan_deadline_margin_seconds{plan="often"}`
	if !wait.Until(10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(body), sample+" ")
	}) {
		t.Fatalf("%s not exported within 10 s", sample)
	}
	if m := scrape(t, addr, sample); m < time.Hour.Seconds() || m > 2*time.Hour.Seconds() {
		t.Errorf("%s = %g, want about 2 hours: the deadline less one task's time", sample, m)
	}
}
