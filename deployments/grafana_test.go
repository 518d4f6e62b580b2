package deployments_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// promQL returns every PromQL expression of a Grafana dashboard, with where it
// is, and checks that every panel and query uses the data source variable.
func promQL(t *testing.T, path string) map[string]string {
	t.Helper()
	type target struct {
		Expr       string `json:"expr"`
		RefID      string `json:"refId"`
		Datasource struct{ UID string }
	}
	type panel struct {
		ID         int    `json:"id"`
		Title      string `json:"title"`
		Type       string `json:"type"`
		Datasource *struct{ UID string }
		Targets    []target `json:"targets"`
		Panels     []panel  `json:"panels"`
	}
	type variable struct {
		Name, Type string
		Query      any // a string, or an object for some variable types
	}
	var d struct {
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []variable `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(readFile(t, path), &d); err != nil {
		t.Fatal(err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("%s: schemaVersion %d, want a current one (36 or later)", path, d.SchemaVersion)
	}
	const ds = "${DS_PROMETHEUS}"
	exprs := map[string]string{}
	hasDS := false
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		switch v.Type {
		case "datasource":
			hasDS = hasDS || v.Name == "DS_PROMETHEUS" && q == "prometheus"
		case "query": // label_values(EXPR, label) or an expression
			if inner, ok := strings.CutPrefix(q, "label_values("); ok {
				q = strings.TrimSuffix(inner, ")")
				if i := strings.LastIndex(q, ","); i >= 0 {
					q = q[:i]
				}
			}
			exprs["variable "+v.Name] = q
		}
	}
	if !hasDS {
		t.Errorf("%s: no Prometheus data source variable DS_PROMETHEUS", path)
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", path, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != ds {
				t.Errorf("%s: panel %q does not use the data source %s", path, p.Title, ds)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", path, p.Title)
			}
			for _, q := range p.Targets {
				if q.Datasource.UID != ds || q.Expr == "" {
					t.Errorf("%s: panel %q query %s: want an expr on %s", path, p.Title, q.RefID, ds)
				}
				exprs[fmt.Sprintf("panel %q query %s", p.Title, q.RefID)] = q.Expr
			}
		}
	}
	walk(d.Panels)
	return exprs
}

var (
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true, "Inf": true, "NaN": true}
)

// metricNames returns the metric names of a PromQL expression: identifiers
// that are not inside strings, label matchers, ranges or grouping lists, not
// functions or aggregations (followed by a parenthesis), not keywords, not
// part of a number or duration, and not Grafana variables.
func metricNames(expr string) []string {
	expr = promStrings.ReplaceAllString(expr, `""`)
	expr = promMatchers.ReplaceAllString(expr, " ")
	expr = promGrouping.ReplaceAllString(expr, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(expr, -1) {
		name, before, after := expr[loc[0]:loc[1]], "", strings.TrimLeft(expr[loc[1]:], " \t\n")
		if loc[0] > 0 {
			before = expr[loc[0]-1 : loc[0]]
		}
		if promKeywords[name] || strings.HasPrefix(after, "(") || strings.ContainsAny(before, "0123456789.$") {
			continue
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y{"}[$__rate_interval])))`:         {"a_bucket"},
		`sum(rate(b_total{result=~"hit|stale"}[5m])) / on (job) group_left c offset 1h > bool 1e3`: {"b_total", "c"},
		`max by (queue, state) (d) unless e`:                                                       {"d", "e"},
		`sum(max by (state) (f{state=~"a|b"})) > 0 and on () hour() == 5`:                          {"f"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}

// TestDashboardMetricsExist builds the binary with the Dockerfile's own
// command, runs it (role all: embedded Redis, a quick simulated BI platform,
// a warming plan with a deadline, firing every second), makes one read so
// that histograms and queues have samples, and checks that every metric the
// Grafana dashboard or an alert rule queries is on its /metrics.
func TestDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	exprs := promQL(t, "grafana/dashcache.json")
	// 120 reports, at the default rate of 10: the warm is on for seconds.
	var customers []string
	for i := range 20 {
		customers = append(customers, fmt.Sprintf("c%02d", i))
	}
	plans := filepath.Join(t.TempDir(), "plans.yaml")
	if err := os.WriteFile(plans, []byte(`plans:
  - name: busy
    cron: "@every 1s"
    customers: [`+strings.Join(customers, ", ")+`]
    ranges: [yesterday, last_7_days, last_30_days, month_to_date, previous_month, year_to_date]
    deadline: "06:00"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http://" + start(t, "dashcache", "all", map[string]string{
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_SIM_LATENCY":   "10ms",
		"DASHCACHE_SCHEDULE_FILE": plans,
	})

	client := &http.Client{Timeout: 15 * time.Second}
	get := func(path string) string {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%.300s", path, resp.Status, body)
		}
		return string(body)
	}
	get("/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31&wait=10s")

	families := map[string]string{} // name -> type
	// The plan's margin is exported once it has fired.
	for waited := time.Duration(0); waited < 10*time.Second && families["dashcache_plan_deadline_margin_seconds"] == ""; waited += 200 * time.Millisecond {
		time.Sleep(200 * time.Millisecond)
		for line := range strings.Lines(get("/metrics")) {
			if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
				families[f[2]] = f[3]
			}
		}
	}
	exported := func(name string) bool {
		if _, ok := families[name]; ok {
			return true
		}
		for suffix, types := range map[string][]string{"_bucket": {"histogram"}, "_sum": {"histogram", "summary"}, "_count": {"histogram", "summary"}} {
			if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(types, families[base]) {
				return true
			}
		}
		return false
	}
	used := map[string]bool{}
	for where, expr := range exprs {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("grafana/dashcache.json, %s: no metric in %q", where, expr)
		}
		for _, n := range names {
			used[n] = true
			if !exported(n) {
				t.Errorf("grafana/dashcache.json, %s: %s is not on dashcache's /metrics", where, n)
			}
		}
	}
	for _, r := range alertRules(t) {
		for _, n := range metricNames(r.Expr) {
			if !exported(n) {
				t.Errorf("prometheus/alerts.yml, alert %s: %s is not on dashcache's /metrics", r.Alert, n)
			}
		}
	}
	// The dashboard shows every metric docs/http-api.md promises.
	for _, want := range []string{
		"dashcache_reads_total", "dashcache_fill_wait_seconds_bucket", "dashcache_provider_calls_total",
		"dashcache_provider_call_seconds_bucket", "dashcache_enqueues_total", "dashcache_lock_total",
		"asynq_queue_size", "asynq_queue_latency_seconds", "asynq_tasks_processed_total", "asynq_tasks_failed_total",
		"dashcache_admissions_total", "dashcache_deferrals_total", "dashcache_breaker_open",
	} {
		if !used[want] {
			t.Errorf("grafana/dashcache.json does not show %s", want)
		}
	}
}
