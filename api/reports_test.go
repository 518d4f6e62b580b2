package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
)

// TestNamedReports: GET /v1/reports/{name} reads a report of the catalogue,
// from L1 on the fast path as from Redis; its answer names it, and it is
// apart from the default report and the other named ones. A name the
// catalogue does not have is a 404 that lists those it has; GET
// /v1/reports is still the default report.
func TestNamedReports(t *testing.T) {
	f := newFixture(t, func(c *api.Config) {
		c.Reports, c.L1Bytes = dashcache.Served{Named: []string{"orders", "revenue"}}, api.DefaultL1Bytes
	})
	revenue, def := key(t, "acme", "2025-01-01", "2025-01-31"), key(t, "acme", "2025-01-01", "2025-01-31")
	revenue.Report = "revenue"
	f.fillSeen(t, revenue, `{"rows":1}`, now.Add(-3*time.Second), time.Hour)
	f.fillSeen(t, def, `{"n":2}`, now.Add(-3*time.Second), time.Hour)

	for range 2 { // from Redis, then from L1
		resp, body := f.do(t, http.MethodGet, "/v1/reports/revenue?customer=acme&from=2025-01-01&to=2025-01-31", "")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, `{"report":"revenue","customer":"acme",`) || !strings.Contains(body, `"data":{"rows":1}`) {
			t.Fatalf("revenue: %d %s", resp.StatusCode, body)
		}
	}
	if resp, body := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31"); resp.StatusCode != http.StatusOK ||
		!strings.HasPrefix(body, `{"customer":"acme",`) || !strings.Contains(body, `"data":{"n":2}`) {
		t.Errorf("the default report: %d %s", resp.StatusCode, body)
	}
	if _, n := api.L1Size(f.srv); n != 2 {
		t.Errorf("L1 holds %d reports, want the two read", n)
	}
	// orders is not cached: a miss, whose fill is asked for orders.
	resp, _ := f.do(t, http.MethodGet, "/v1/reports/orders?customer=acme&from=2025-01-01&to=2025-01-31&wait=0s", "")
	if resp.StatusCode != http.StatusAccepted || f.enqueued.Load() != 1 {
		t.Errorf("orders: %d, %d fills asked for; want 202 and 1", resp.StatusCode, f.enqueued.Load())
	}
	for _, path := range []string{"/v1/reports/funnel", "/v1/reports/", "/v1/reports/revenue/x", "/v1/reports/Revenue"} {
		resp, body := f.do(t, http.MethodGet, path+"?customer=acme&from=2025-01-01&to=2025-01-31", "")
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "orders|revenue") {
			t.Errorf("%s: %d %s; want 404 naming the reports", path, resp.StatusCode, body)
		}
	}
}

// TestNoCatalogue: without a catalogue, a named report is a 404 that says
// so.
func TestNoCatalogue(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(t, http.MethodGet, "/v1/reports/revenue?customer=acme&from=2025-01-01&to=2025-01-31", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "DASHCACHE_REPORTS_FILE") {
		t.Errorf("%d %s; want 404 naming DASHCACHE_REPORTS_FILE", resp.StatusCode, body)
	}
}

// TestNoDefaultReport: with a catalogue and no BI platform for the default
// report, GET /v1/reports is a 404 (on the fast path too, with L1) that
// names the reports there are, and a warm must name its reports; the named
// reports are read as ever.
func TestNoDefaultReport(t *testing.T) {
	f := newFixture(t, func(c *api.Config) {
		c.Reports, c.L1Bytes = dashcache.Served{Named: []string{"revenue"}, NoDefault: true}, api.DefaultL1Bytes
	})
	revenue := key(t, "acme", "2025-01-01", "2025-01-31")
	revenue.Report = "revenue"
	f.fillSeen(t, revenue, `{"rows":1}`, now.Add(-3*time.Second), time.Hour)
	resp, body := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "/v1/reports/{revenue}") || !strings.Contains(body, "DASHCACHE_PROVIDER_URL") {
		t.Errorf("the default report: %d %s; want 404 naming the reports and DASHCACHE_PROVIDER_URL", resp.StatusCode, body)
	}
	if f.enqueued.Load() != 0 {
		t.Errorf("%d fills asked for a report there is not", f.enqueued.Load())
	}
	if resp, _ := f.do(t, http.MethodGet, "/v1/reports/revenue?customer=acme&from=2025-01-01&to=2025-01-31", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("revenue: %d", resp.StatusCode)
	}
	resp, body = f.do(t, http.MethodPost, "/v1/warm", `{"customers":["acme"],"ranges":["yesterday"]}`)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "reports is required") {
		t.Errorf("warm of the default report: %d %s; want 400 asking for reports", resp.StatusCode, body)
	}
}
