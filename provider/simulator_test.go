package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

func TestSimulatorQueryIsDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sim := NewSimulator(SimConfig{MaxLatency: -1})
	other := NewSimulator(SimConfig{MaxLatency: -1})

	jan := mustKey(t, "acme|2025-01-01|2025-01-31")
	a, err := sim.Query(ctx, jan)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := other.Query(ctx, jan)
	if string(a) != string(b) {
		t.Errorf("same key, different bytes:\n%s\n%s", a, b)
	}
	if c, _ := sim.Query(ctx, mustKey(t, "globex|2025-01-01|2025-01-31")); string(c) == string(a) {
		t.Error("different customers, same bytes")
	}

	var r simReportJSON
	if err := json.Unmarshal(a, &r); err != nil {
		t.Fatal(err)
	}
	if r.Customer != "acme" || r.From != "2025-01-01" || r.To != "2025-01-31" || r.Days != 31 || len(r.Series) != 31 {
		t.Errorf("report header %+v", r)
	}
	var orders int64
	for _, d := range r.Series {
		orders += d.Orders
	}
	if orders != r.Orders || r.Revenue <= 0 {
		t.Errorf("totals orders=%d revenue=%v, series sums to %d orders", r.Orders, r.Revenue, orders)
	}

	// A day's numbers do not depend on the range asked for.
	day, _ := sim.Query(ctx, mustKey(t, "acme|2025-01-15|2025-01-15"))
	var d simReportJSON
	if err := json.Unmarshal(day, &d); err != nil {
		t.Fatal(err)
	}
	if d.Series[0] != r.Series[14] {
		t.Errorf("2025-01-15 alone %+v, within January %+v", d.Series[0], r.Series[14])
	}
	if n := sim.Calls(); n != 3 {
		t.Errorf("Calls() = %d, want 3", n)
	}
}

func TestSimulatorQueryCancelled(t *testing.T) {
	t.Parallel()
	sim := NewSimulator(SimConfig{}) // 2-5 s
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := sim.Query(ctx, mustKey(t, "acme|2025-01-01|2025-01-31"))
	pe := asProviderError(t, err)
	if pe.Outcome != dashcache.OutcomeTransient || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want transient wrapping context.Canceled", err)
	}
	if n := sim.Calls(); n != 1 {
		t.Errorf("Calls() = %d, want 1: a started query counts", n)
	}
}

func TestNewSimulatorLatency(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		min, max time.Duration
		wantMin  time.Duration
		wantMax  time.Duration
	}{
		{"defaults", 0, 0, 2 * time.Second, 5 * time.Second},
		{"at once", 0, -1, 0, 0},
		{"fixed", 100 * time.Millisecond, 0, 100 * time.Millisecond, 100 * time.Millisecond},
		{"range", time.Second, 3 * time.Second, time.Second, 3 * time.Second},
	}
	for _, tt := range tests {
		s := NewSimulator(SimConfig{MinLatency: tt.min, MaxLatency: tt.max})
		if s.cfg.MinLatency != tt.wantMin || s.cfg.MaxLatency != tt.wantMax {
			t.Errorf("%s: latency [%s, %s], want [%s, %s]", tt.name, s.cfg.MinLatency, s.cfg.MaxLatency, tt.wantMin, tt.wantMax)
		}
		for range 20 {
			if d := s.latency(); d < tt.wantMin || d > tt.wantMax {
				t.Errorf("%s: latency %s out of range", tt.name, d)
			}
		}
	}
}

// TestParseLatency: DASHCACHE_SIM_LATENCY's forms give the simulator the
// latency they say, an explicit 0s included.
func TestParseLatency(t *testing.T) {
	t.Parallel()
	for s, want := range map[string][2]time.Duration{
		"3s":       {3 * time.Second, 3 * time.Second},
		"2s-5s":    {2 * time.Second, 5 * time.Second},
		"0s":       {0, 0},
		"0s-100ms": {0, 100 * time.Millisecond},
		"10ms":     {10 * time.Millisecond, 10 * time.Millisecond},
	} {
		lo, hi, err := ParseLatency(s)
		if err != nil {
			t.Errorf("ParseLatency(%q): %v", s, err)
			continue
		}
		sim := NewSimulator(SimConfig{MinLatency: lo, MaxLatency: hi})
		if got := [2]time.Duration{sim.cfg.MinLatency, sim.cfg.MaxLatency}; got != want {
			t.Errorf("%q: latency %v, want %v", s, got, want)
		}
	}
	for _, s := range []string{"", "soon", "5s-2s", "-1s", "1s-", "1s-2s-3s"} {
		if _, _, err := ParseLatency(s); err == nil || !strings.Contains(err.Error(), "2s-5s") {
			t.Errorf("ParseLatency(%q): %v, want an error showing the forms", s, err)
		}
	}
}

func TestSimulatorFailInProcess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status    int
		retry     time.Duration
		outcome   dashcache.ProviderOutcome
		wantRetry time.Duration
	}{
		{429, 5 * time.Second, dashcache.OutcomeRateLimited, 5 * time.Second},
		{429, 0, dashcache.OutcomeRateLimited, time.Second},
		{400, 0, dashcache.OutcomePermanent, 0},
		{404, 0, dashcache.OutcomePermanent, 0},
		{500, 0, dashcache.OutcomeTransient, 0},
		{503, 0, dashcache.OutcomeTransient, 0},
	}
	for _, tt := range tests {
		sim := NewSimulator(SimConfig{
			MinLatency: time.Hour, // a failure answers at once
			Fail:       func(dashcache.ReportKey) (int, time.Duration) { return tt.status, tt.retry },
		})
		_, err := sim.Query(context.Background(), mustKey(t, "acme|2025-01-01|2025-01-31"))
		pe := asProviderError(t, err)
		if pe.Outcome != tt.outcome || pe.Status != tt.status || pe.RetryAfter != tt.wantRetry {
			t.Errorf("Fail %d: got %v, want %s with RetryAfter %s", tt.status, err, tt.outcome, tt.wantRetry)
		}
	}
}

func TestSimulatorHandler(t *testing.T) {
	t.Parallel()
	const good = `{"customer":"acme","from":"2025-01-01","to":"2025-01-31"}`
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		header     map[string]string
		body       string
		wantStatus int
		wantInBody string
		wantCalls  int64
	}{
		{name: "query", method: "POST", path: "/query", auth: "Bearer tok", body: good, wantStatus: 200, wantInBody: `"days":31`, wantCalls: 1},
		{name: "matching idempotency key", method: "POST", path: "/query", auth: "Bearer tok", body: good,
			header: map[string]string{"Idempotency-Key": "acme|2025-01-01|2025-01-31"}, wantStatus: 200, wantCalls: 1},
		{name: "other idempotency key", method: "POST", path: "/query", auth: "Bearer tok", body: good,
			header: map[string]string{"Idempotency-Key": "acme|2025-01-01|2025-01-30"}, wantStatus: 400, wantInBody: "Idempotency-Key"},
		{name: "no token", method: "POST", path: "/query", body: good, wantStatus: 401, wantInBody: `"error"`},
		{name: "wrong token", method: "POST", path: "/query", auth: "Bearer nope", body: good, wantStatus: 401},
		{name: "not JSON", method: "POST", path: "/query", auth: "Bearer tok", body: `customer=acme`, wantStatus: 400, wantInBody: `"error"`},
		{name: "empty body", method: "POST", path: "/query", auth: "Bearer tok", wantStatus: 400},
		{name: "missing field", method: "POST", path: "/query", auth: "Bearer tok", body: `{"customer":"acme","from":"2025-01-01"}`, wantStatus: 400, wantInBody: "to is required"},
		{name: "bad date", method: "POST", path: "/query", auth: "Bearer tok", body: `{"customer":"acme","from":"2025-02-30","to":"2025-03-01"}`, wantStatus: 400, wantInBody: "real date"},
		{name: "reversed range", method: "POST", path: "/query", auth: "Bearer tok", body: `{"customer":"acme","from":"2025-02-01","to":"2025-01-01"}`, wantStatus: 400},
		{name: "pipe in customer", method: "POST", path: "/query", auth: "Bearer tok", body: `{"customer":"a|b","from":"2025-01-01","to":"2025-01-01"}`, wantStatus: 400},
		{name: "GET query", method: "GET", path: "/query", auth: "Bearer tok", wantStatus: 405},
		{name: "customers", method: "GET", path: "/customers", auth: "Bearer tok", wantStatus: 200, wantInBody: `["x","y"]`},
		{name: "POST customers", method: "POST", path: "/customers", auth: "Bearer tok", wantStatus: 405},
		{name: "customers without token", method: "GET", path: "/customers", wantStatus: 401},
		{name: "rate limited", method: "POST", path: "/query", auth: "Bearer tok", body: `{"customer":"limited","from":"2025-01-01","to":"2025-01-01"}`,
			wantStatus: 429, wantCalls: 1},
		{name: "unknown path", method: "GET", path: "/nope", auth: "Bearer tok", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sim := NewSimulator(SimConfig{
				MaxLatency: -1,
				Token:      "tok",
				Customers:  []string{"x", "y"},
				Fail: func(k dashcache.ReportKey) (int, time.Duration) {
					if k.Customer == "limited" {
						return 429, 1500 * time.Millisecond
					}
					return 0, 0
				},
			})
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			sim.Handler().ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d (body %s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tt.wantInBody) {
				t.Errorf("body %s does not contain %s", rec.Body, tt.wantInBody)
			}
			if rec.Code != 405 && rec.Code != 404 && !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body is not JSON: %s", rec.Body)
			}
			if n := sim.Calls(); n != tt.wantCalls {
				t.Errorf("Calls() = %d, want %d", n, tt.wantCalls)
			}
			if tt.wantStatus == 401 && rec.Header().Get("WWW-Authenticate") != "Bearer" {
				t.Error("401 without WWW-Authenticate: Bearer")
			}
			if tt.wantStatus == 429 && rec.Header().Get("Retry-After") != "2" {
				t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", rec.Header().Get("Retry-After"))
			}
		})
	}
}
