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

// TestNamedReportAnswers: a report of the catalogue is refused and answered
// as the default report is: 400, 401, 403, 429 and 503 with Retry-After,
// 502, 503 without Redis; 304 for its ETag, from Redis and from L1.
func TestNamedReportAnswers(t *testing.T) {
	catalogue := func(c *api.Config) { c.Reports = dashcache.Served{Named: []string{"revenue"}} }
	const q = "?customer=acme&from=2025-01-01&to=2025-01-31"
	revenue := key(t, "acme", "2025-01-01", "2025-01-31")
	revenue.Report = "revenue"

	f := newFixture(t, catalogue, withKeys(t, "acme-key-0123456789=acme|crowded|down|failing"))
	fill(t, f.store, revenue, `[{"day":"2025-01-01","revenue":1}]`)
	failing := key(t, "failing", "2025-01-01", "2025-01-31")
	failing.Report = "revenue"
	l, err := f.store.Cache.Obtain(t.Context(), failing, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RememberFailure(t.Context(), `the BI platform failed for report "revenue" (permanent, HTTP 400)`, time.Minute); err != nil {
		t.Fatal(err)
	}
	auth := []string{"Authorization", "Bearer acme-key-0123456789"}
	for _, c := range []struct {
		name, query string
		header      []string
		status      int
		retryAfter  string
	}{
		{"no key", q, nil, http.StatusUnauthorized, ""},
		{"bad input", "?customer=acme&from=2025-01-31&to=2025-01-01", auth, http.StatusBadRequest, ""},
		{"another customer", "?customer=globex&from=2025-01-01&to=2025-01-31", auth, http.StatusForbidden, ""},
		{"too many fills", "?customer=crowded&from=2025-01-01&to=2025-01-31", auth, http.StatusTooManyRequests, "2"},
		{"the breaker open", "?customer=down&from=2025-01-01&to=2025-01-31", auth, http.StatusServiceUnavailable, "20"},
		{"a remembered failure", "?customer=failing&from=2025-01-01&to=2025-01-31", auth, http.StatusBadGateway, ""},
		{"the report", q, auth, http.StatusOK, ""},
	} {
		resp, body := f.do(t, http.MethodGet, "/v1/reports/revenue"+c.query, "", c.header...)
		if resp.StatusCode != c.status || resp.Header.Get("Retry-After") != c.retryAfter {
			t.Errorf("%s: %d Retry-After %q %s; want %d, Retry-After %q", c.name, resp.StatusCode, resp.Header.Get("Retry-After"), body, c.status, c.retryAfter)
		}
	}

	// 304, from Redis (net/http) and then from L1 (the fast path).
	for _, l1 := range []int64{0, api.DefaultL1Bytes} {
		g := newFixture(t, catalogue, func(c *api.Config) { c.L1Bytes = l1 })
		if l1 == 0 {
			fill(t, g.store, revenue, `[{"day":"2025-01-01","revenue":1}]`)
		} else {
			g.fillSeen(t, revenue, `[{"day":"2025-01-01","revenue":1}]`, now.Add(-3*time.Second), time.Hour)
		}
		resp, _ := g.do(t, http.MethodGet, "/v1/reports/revenue"+q, "")
		etag := resp.Header.Get("Etag")
		for range 2 {
			if resp, body := g.do(t, http.MethodGet, "/v1/reports/revenue"+q, "", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified || body != "" {
				t.Errorf("L1 of %d bytes: %d %q for the report's ETag, want 304", l1, resp.StatusCode, body)
			}
		}
	}

	g := newFixture(t, catalogue)
	g.mini.Close()
	if resp, body := g.do(t, http.MethodGet, "/v1/reports/revenue"+q, ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Redis down: %d %s, want 503", resp.StatusCode, body)
	}
}
