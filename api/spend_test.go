package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/wait"
)

// TestRefusedFills: a miss whose fill the queue refuses gets 429 (503 while
// the breaker is open) with Retry-After and the refusal's detail; a stale
// report of the same customer is still served.
func TestRefusedFills(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		customer, retryAfter, detail string
		status                       int
	}{
		{"crowded", "2", "too many fills outstanding", http.StatusTooManyRequests},
		{"down", "20", "the BI platform is down", http.StatusServiceUnavailable},
	} {
		resp, body := f.get(t, "customer="+c.customer+"&from=2025-01-01&to=2025-01-31")
		if resp.StatusCode != c.status || resp.Header.Get("Retry-After") != c.retryAfter ||
			resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, c.detail) {
			t.Errorf("%s: %d Retry-After %q %s; want %d, Retry-After %s and the refusal's detail",
				c.customer, resp.StatusCode, resp.Header.Get("Retry-After"), body, c.status, c.retryAfter)
		}
	}
	k := key(t, "crowded", "2025-03-01", "2025-03-09")
	fillAt(t, f.store, k, `{"old":true}`, now.Add(-8*24*time.Hour), dashcache.ClosedTTL)
	if resp, body := f.get(t, "customer=crowded&from=2025-03-01&to=2025-03-09"); resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "stale" {
		t.Errorf("a stale report of a refused customer: %d %q %s; want it served", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
}

// flipQueue admits the first fill, then refuses every later one. It does
// not invalidate (nil Invalidator).
type flipQueue struct {
	calls atomic.Int64
	dashcache.Invalidator
}

func (q *flipQueue) Ensure(context.Context, dashcache.ReportKey) (bool, error) {
	if q.calls.Add(1) == 1 {
		return true, nil
	}
	return false, &dashcache.Refusal{Reason: dashcache.ReasonBreaker, RetryAfter: time.Second, Detail: "down"}
}

func (*flipQueue) Warm(context.Context, dashcache.ReportKey, dashcache.Refresh) (bool, error) {
	return false, nil
}

// TestWaitingReaderOutlivesRefusal: a reader whose fill was admitted keeps
// waiting when a later re-assertion is refused, and gets the report.
func TestWaitingReaderOutlivesRefusal(t *testing.T) {
	q := &flipQueue{}
	f := newFixture(t, func(c *api.Config) { c.Queue = q })
	api.SetReassertEvery(f.srv, 0)
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	q1 := "customer=acme&from=2025-01-01&to=2025-01-31&wait="
	done := make(chan int, 1)
	go func() {
		resp, _ := f.get(t, q1+"20s")
		done <- resp.StatusCode
	}()
	wait.For(t, "the first reader to ask for the fill", 10*time.Second, func() bool { return q.calls.Load() >= 1 })
	// A second reader joins the wait and re-asserts it: refused.
	if resp, _ := f.get(t, q1+"0s"); resp.StatusCode != http.StatusAccepted || q.calls.Load() != 2 {
		t.Errorf("second reader: %d after %d calls; want 202 after a refused re-assertion", resp.StatusCode, q.calls.Load())
	}
	fill(t, f.store, k, `{}`)
	if s := <-done; s != http.StatusOK {
		t.Errorf("the waiting reader got %d, want the report", s)
	}
}

// TestDataHorizon: a range that starts before the earliest date served is
// 400 with a detail naming the setting; by default that is ten years back.
func TestDataHorizon(t *testing.T) {
	for _, c := range []struct {
		earliest time.Time
		from     string
		status   int
	}{
		{time.Time{}, "0001-01-01", 400},
		{time.Time{}, "2015-03-09", 400},
		{time.Time{}, "2015-03-10", 202},
		{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "2024-12-31", 400},
		{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), "2025-01-01", 202},
	} {
		f := newFixture(t, func(cfg *api.Config) { cfg.Earliest = c.earliest })
		resp, body := f.get(t, "customer=acme&from="+c.from+"&to="+c.from+"&wait=0s")
		if resp.StatusCode != c.status || c.status == 400 && !strings.Contains(body, "DASHCACHE_EARLIEST_DATE") {
			t.Errorf("from %s with earliest %v: %d %s, want %d", c.from, c.earliest, resp.StatusCode, body, c.status)
		}
	}
}

// TestUsage: GET /v1/usage shows today's BI calls (and those of each named
// report) and refusals per customer, the busiest first.
func TestUsage(t *testing.T) {
	f := newFixture(t) // with a daily budget of 100 calls
	ctx := context.Background()
	today := dashcache.DayOf(now)
	for range 3 {
		f.store.Guards.Spend(ctx, today, "globex", "", 0)
	}
	f.store.Guards.Spend(ctx, today, "acme", "revenue", 0)
	f.store.Guards.Spend(ctx, today-1, "acme", "", 0) // yesterday
	f.store.Guards.CountRefusal(ctx, today, "acme", dashcache.ReasonPending)
	resp, body := f.do(t, http.MethodGet, "/v1/usage", "")
	var got struct {
		Date       string
		DailyCalls int `json:"daily_calls"`
		Customers  []struct {
			Customer string
			Calls    int64
			Reports  map[string]int64
			Refused  map[string]int64
		}
	}
	if err := json.Unmarshal([]byte(body), &got); resp.StatusCode != 200 || err != nil {
		t.Fatalf("%d %v: %s", resp.StatusCode, err, body)
	}
	if got.Date != "2025-03-10" || got.DailyCalls != 100 || len(got.Customers) != 2 ||
		got.Customers[0].Customer != "globex" || got.Customers[0].Calls != 3 ||
		got.Customers[1].Calls != 1 || got.Customers[1].Refused["pending"] != 1 || got.Customers[1].Refused["budget"] != 0 ||
		got.Customers[1].Reports["revenue"] != 1 || got.Customers[0].Reports != nil {
		t.Errorf("usage %s", body)
	}
}
