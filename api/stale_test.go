package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// TestStaleIfError: while Redis is unreachable, the reports an API process
// holds in L1 are served stale (X-Cache-Reason: redis-unavailable, max-age=0)
// on the fast path and on net/http, a fresh one as a stale one, never past
// the stale window; a report it does not hold is a fast 503. A fill made
// while Redis was away (its notification lost) is served once Redis is back,
// and the report L1 kept is never served as a hit again.
func TestStaleIfError(t *testing.T) {
	reg := prometheus.NewRegistry()
	var clock atomic.Int64 // added to now
	f := newFixture(t, func(c *api.Config) {
		c.L1Bytes = 1 << 20
		c.Registerer = reg
		c.Now = func() time.Time { return now.Add(time.Duration(clock.Load())) }
	})
	var fast atomic.Int64
	fastURL := "http://" + serveFront(t, func(c *fasthttp.RequestCtx) bool {
		served := f.srv.ServeFast(c)
		if served {
			fast.Add(1)
		}
		return served
	}, f.srv.Handler())
	netHTTP := httptest.NewServer(f.srv.Handler())
	defer netHTTP.Close()
	client := checkedClient(t)
	get := func(base, query string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/reports?"+query, nil)
		req.Host = "localhost"
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	fresh, stale, unread := key(t, "acme", "2025-01-01", "2025-01-31"), key(t, "acme", "2025-02-01", "2025-02-28"), key(t, "globex", "2025-01-01", "2025-01-31")
	query := func(k dashcache.ReportKey) string {
		return "customer=" + k.Customer + "&from=" + k.From.String() + "&to=" + k.To.String()
	}
	f.fillSeen(t, fresh, `{"n":1}`, now.Add(-3*time.Second), time.Hour)
	f.fillSeen(t, stale, `{"n":2}`, now.Add(-90*time.Minute), time.Hour) // stale, 30 min of its window left
	f.fillSeen(t, unread, `{"n":3}`, now.Add(-3*time.Second), time.Hour)
	for _, k := range []dashcache.ReportKey{fresh, stale} {
		get(f.url, query(k)) // from Redis, into L1
		if resp, _ := get(f.url, query(k)); resp.Header.Get("X-Cache-Reason") != "" {
			t.Fatalf("%s while Redis answers: X-Cache-Reason %q", k, resp.Header.Get("X-Cache-Reason"))
		}
	}

	wait.For(t, "the stale report's refresh, asked for while Redis answers", 5*time.Second, func() bool { return len(f.warmed()) > 0 })
	f.mini.Close()
	wait.For(t, "a held report to be served stale", 10*time.Second, func() bool {
		resp, _ := get(netHTTP.URL, query(fresh))
		return resp.Header.Get("X-Cache") == "stale"
	})
	for _, k := range []dashcache.ReportKey{fresh, stale} {
		for _, base := range []string{fastURL, netHTTP.URL} {
			before := fast.Load()
			resp, body := get(base, query(k), "Accept-Encoding", "gzip")
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "stale" ||
				resp.Header.Get("X-Cache-Reason") != "redis-unavailable" || resp.Header.Get("Cache-Control") != "private, max-age=0" ||
				!strings.Contains(body, `"data":`) {
				t.Errorf("%s via %s with Redis away: %d X-Cache %q, X-Cache-Reason %q, Cache-Control %q, %.60q", k, base, resp.StatusCode,
					resp.Header.Get("X-Cache"), resp.Header.Get("X-Cache-Reason"), resp.Header.Get("Cache-Control"), body)
			}
			if base == fastURL && fast.Load() != before+1 {
				t.Errorf("%s: not served on the fast path", k)
			}
			if resp, _ := get(base, query(k), "If-None-Match", resp.Header.Get("Etag"), "Accept-Encoding", "gzip"); resp.StatusCode != http.StatusNotModified ||
				resp.Header.Get("X-Cache-Reason") != "redis-unavailable" {
				t.Errorf("%s via %s revalidated with Redis away: %d, X-Cache-Reason %q", k, base, resp.StatusCode, resp.Header.Get("X-Cache-Reason"))
			}
		}
	}
	start := time.Now()
	if resp, body := get(fastURL, query(unread)); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "unreachable") {
		t.Errorf("a report not held, Redis away: %d %s, want 503", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a report not held, Redis away: refused after %s, want at once", took)
	}
	if n := prometheusCounter(reg, "dashcache_reads_total", "stale_if_error")(); n < 8 {
		t.Errorf(`dashcache_reads_total{result="stale_if_error"} = %v, want the 8 answers at least`, n)
	}
	if n := len(f.warmed()); n != 0 {
		t.Errorf("%d refreshes asked for while Redis was away", n)
	}
	clock.Store(int64(31 * time.Minute)) // past the stale report's window
	if resp, _ := get(fastURL, query(stale)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("a report past its stale window, Redis away: %d, want 503", resp.StatusCode)
	}
	clock.Store(0)

	// A refill while Redis is away from the API: its notification is lost.
	next := store.NewEntry(fresh, []byte(`{"n":4}`), now.Add(-time.Second), 2*time.Second, time.Hour)
	if err := f.mini.Set(store.EntryKey(fresh), string(next)); err != nil {
		t.Fatal(err)
	}
	if err := f.mini.Restart(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	wait.For(t, "the refill to be served", 10*time.Second, func() bool {
		resp, body := get(fastURL, query(fresh))
		seen = append(seen, resp.Header.Get("X-Cache")+" "+body)
		return strings.Contains(body, `"n":4`)
	})
	for range 20 {
		resp, body := get(fastURL, query(fresh))
		seen = append(seen, resp.Header.Get("X-Cache")+" "+body)
	}
	for _, s := range seen {
		if strings.HasPrefix(s, "hit ") && !strings.Contains(s, `"n":4`) {
			t.Fatalf("the report L1 kept while Redis was away was served as a hit after it came back: %.80s", s)
		}
	}
	if last := seen[len(seen)-1]; !strings.HasPrefix(last, "hit ") {
		t.Errorf("once Redis is back: %.80s, want a hit", last)
	}
}
