package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
)

// TestNamedReportsOnHTTPBackends: with a catalogue, 3 readers of each of
// two named reports on their own http back ends, and of the default report,
// are all served, each report at the cost of one call at its own BI server;
// the answers name their reports. A catalogue naming an unset variable
// stops a worker at start, naming it and its back end.
func TestNamedReportsOnHTTPBackends(t *testing.T) {
	url := redistest.URL(t)
	def, sales, crm := newBIServer(t, 50*time.Millisecond, ""), newBIServer(t, 50*time.Millisecond, ""), newBIServer(t, 50*time.Millisecond, "")
	catalogue := filepath.Join(t.TempDir(), "reports.yaml")
	if err := os.WriteFile(catalogue, []byte(fmt.Sprintf(`
backends:
  sales: {type: http, url: %q, rate: 5}
  crm: {type: http, url: %q, token_env: CRM_TOKEN}
reports:
  revenue: {backend: sales}
  accounts: {backend: crm}
`, sales.URL, crm.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     url,
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  def.URL,
		"DASHCACHE_REPORTS_FILE":  catalogue,
		"CRM_TOKEN":               "crm-token-0123456789",
		"DASHCACHE_PROVIDER_RATE": "100",
	}
	worker := startRole(t, "worker", env)
	api := startRole(t, "api", env)

	type result struct {
		path string
		r    read
	}
	results := make(chan result, 9)
	for _, path := range []string{"/v1/reports/revenue", "/v1/reports/accounts", "/v1/reports"} {
		for range 3 {
			go func() {
				resp, err := readClient.Get("http://" + api + path + "?customer=acme&from=2025-01-01&to=2025-01-31&wait=20s")
				if err != nil {
					t.Error(err)
					results <- result{path: path}
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				results <- result{path, read{status: resp.StatusCode, body: string(body)}}
			}()
		}
	}
	for range 9 {
		res := <-results
		want := `{"customer":"acme",`
		if name, ok := strings.CutPrefix(res.path, "/v1/reports/"); ok {
			want = `{"report":"` + name + `","customer":"acme",`
		}
		if res.r.status != http.StatusOK || !strings.HasPrefix(res.r.body, want) {
			t.Errorf("%s: %d %s, want 200 starting %s", res.path, res.r.status, res.r.body, want)
		}
	}
	for name, bi := range map[string]*biServer{"default": def, "sales": sales, "crm": crm} {
		if n := bi.calls.Load(); n != 1 {
			t.Errorf("the %s BI server got %d calls, want 1", name, n)
		}
	}
	// Each named report is counted on its own, as well as in the totals.
	for _, report := range []string{"revenue", "accounts"} {
		if n := scrape(t, worker, `dashcache_report_calls_total{outcome="ok",report="`+report+`"}`); n != 1 {
			t.Errorf("%s: dashcache_report_calls_total %v, want 1", report, n)
		}
		reads := scrape(t, api, `dashcache_report_reads_total{report="`+report+`",result="miss"}`) +
			scrape(t, api, `dashcache_report_reads_total{report="`+report+`",result="hit"}`)
		if reads != 3 {
			t.Errorf("%s: dashcache_report_reads_total %v hit+miss, want 3", report, reads)
		}
	}
	if n := scrape(t, worker, `dashcache_provider_calls_total{outcome="ok"}`); n != 3 {
		t.Errorf("dashcache_provider_calls_total %v, want 3: every report's calls", n)
	}

	env["CRM_TOKEN"] = ""
	if _, err := LoadConfig("worker", func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	err := Run(t.Context(), []string{"worker"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CRM_TOKEN") || !strings.Contains(err.Error(), "back end crm") {
		t.Errorf("a worker whose catalogue names an unset variable: %v", err)
	}
}

// TestCatalogueWithoutDefaultReport: a catalogue and no
// DASHCACHE_PROVIDER_URL serve the named reports alone: GET /v1/reports is
// a 404 that says why (no simulator answers in production), a plan with
// customers: all stops the scheduler at start, naming it.
func TestCatalogueWithoutDefaultReport(t *testing.T) {
	sales := newBIServer(t, 0, "")
	dir := t.TempDir()
	catalogue, plans := filepath.Join(dir, "reports.yaml"), filepath.Join(dir, "plans.yaml")
	if err := os.WriteFile(catalogue, []byte(fmt.Sprintf("backends:\n  sales: {type: http, url: %q}\nreports:\n  revenue: {backend: sales}\n", sales.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redistest.URL(t),
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_REPORTS_FILE": catalogue,
	}
	addr := startRole(t, "all", env)
	if r := getPath(t, addr, "/v1/reports", "acme", "2025-01-01", "2025-01-31", "5s"); r.status != http.StatusNotFound ||
		!strings.Contains(r.body, "DASHCACHE_PROVIDER_URL") || !strings.Contains(r.body, "/v1/reports/{revenue}") {
		t.Errorf("the default report: %d %s; want 404 naming DASHCACHE_PROVIDER_URL and the reports", r.status, r.body)
	}
	if r := getPath(t, addr, "/v1/reports/revenue", "acme", "2025-01-01", "2025-01-31", "20s"); r.status != http.StatusOK || sales.calls.Load() != 1 {
		t.Errorf("revenue: %d %s, %d BI calls; want 200 and 1", r.status, r.body, sales.calls.Load())
	}

	if err := os.WriteFile(plans, []byte("plans:\n  - {name: nightly, cron: \"@daily\", customers: all, reports: [revenue], ranges: [yesterday]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["DASHCACHE_SCHEDULE_FILE"] = plans
	err := Run(t.Context(), []string{"scheduler"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `plan "nightly" uses customers: all, but no BI platform lists the customers`) {
		t.Errorf("a plan of every customer with no list of them: %v", err)
	}
}
