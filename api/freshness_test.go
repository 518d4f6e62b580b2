package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/api"
)

// TestStaleIsServedAndRefreshed: a report past its freshness is served at once
// as stale, and one refresh is enqueued that names the report the reader saw.
func TestStaleIsServedAndRefreshed(t *testing.T) {
	f := newFixture(t)
	k := key(t, "acme", "2025-03-01", "2025-03-10")
	computed := now.Add(-20 * time.Minute)
	fillAt(t, f.store, k, `{"old":true}`, computed, 5*time.Minute)
	resp, body := f.get(t, "customer=acme&from=2025-03-01&to=2025-03-10&wait=0s")
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "stale" || !strings.Contains(body, `"old":true`) {
		t.Fatalf("status %d X-Cache %q body %s; want the stale report", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
	if cc, age := resp.Header.Get("Cache-Control"), resp.Header.Get("Age"); cc != "private, max-age=0" || age != "1200" {
		t.Errorf("Cache-Control %q Age %q", cc, age)
	}
	select {
	case c := <-f.warms:
		if c.key != k.String() || !c.refresh.Seen.Equal(computed) || c.refresh.Force {
			t.Errorf("refresh %+v, want one that saw the report computed at %s", c, computed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no refresh enqueued for a stale report")
	}
	if f.enqueued.Load() != 0 {
		t.Error("a stale read made the reader wait for a fill")
	}
}

// TestStaleHitsAskOnce: however many hits see a report stale (from L1,
// without Redis), the process asks for its refresh once per re-ask
// interval, not once per hit.
func TestStaleHitsAskOnce(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = 1 << 20 })
	api.SetReassertEvery(f.srv, time.Hour)
	fillAt(t, f.store, key(t, "acme", "2025-03-01", "2025-03-10"), `{"old":true}`, now.Add(-20*time.Minute), 5*time.Minute)
	for range 50 {
		if resp, _ := f.get(t, "customer=acme&from=2025-03-01&to=2025-03-10"); resp.Header.Get("X-Cache") != "stale" {
			t.Fatalf("X-Cache %q, want stale", resp.Header.Get("X-Cache"))
		}
	}
	f.srv.Shutdown(t.Context()) // waits for the asks in flight
	if calls := f.warmed(); len(calls) != 1 {
		t.Errorf("50 stale hits asked for %d refreshes, want 1", len(calls))
	}
}

// TestEarlyRefresh: XFetch refreshes a fresh report early with a probability
// that rises as its expiry nears, scaled by how long it took to compute (2 s).
func TestEarlyRefresh(t *testing.T) {
	cases := []struct {
		name   string
		left   time.Duration // freshness left
		random float64
		want   bool
	}{
		{"far from expiry, unlucky draw", time.Hour, 0.99, false},           // 2s*4.6 = 9.2s < 1h
		{"near expiry, typical draw", time.Second, 0.5, true},               // 2s*0.69 = 1.4s >= 1s
		{"near expiry, lucky draw", time.Second, 0, false},                  // 2s*0 = 0 < 1s
		{"very near expiry, small draw", 100 * time.Millisecond, 0.1, true}, // 2s*0.105 = 0.21s >= 0.1s
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			api.SetRandom(f.srv, func() float64 { return c.random })
			k := key(t, "acme", "2025-01-01", "2025-01-31")
			fillAt(t, f.store, k, `{}`, now.Add(-time.Minute), time.Minute+c.left)
			resp, _ := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31")
			if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "hit" {
				t.Fatalf("status %d X-Cache %q, want a hit", resp.StatusCode, resp.Header.Get("X-Cache"))
			}
			f.srv.Shutdown(t.Context()) // waits for background refreshes
			if got := len(f.warmed()) == 1; got != c.want {
				t.Errorf("refreshed early: %v, want %v", got, c.want)
			}
		})
	}
}

func TestForcedWarm(t *testing.T) {
	f := newFixture(t)
	resp, _ := f.do(t, http.MethodPost, "/v1/warm", `{"customers":["acme"],"from":"2025-01-01","to":"2025-01-02","force":true}`)
	calls := f.warmed()
	if resp.StatusCode != http.StatusAccepted || len(calls) != 1 || !calls[0].refresh.Force {
		t.Fatalf("status %d calls %+v, want one forced warm", resp.StatusCode, calls)
	}
}
