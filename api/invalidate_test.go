package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/wait"
)

// TestInvalidateEndpoint: POST /v1/invalidate hands the process's reads to
// Redis, then asks the queue to invalidate the customers' changed days with
// the read window; bad bodies are a 400 that says what is accepted.
func TestInvalidateEndpoint(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.Auth.AdminToken = "s3cret-s3cret-s3cret"; c.ReadWithin = 24 * time.Hour })
	auth := []string{"Authorization", "Bearer s3cret-s3cret-s3cret"}
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	fill(t, f.store, k, `{"n":1}`)
	if resp, _ := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31"); resp.StatusCode != http.StatusOK {
		t.Fatalf("read: %d", resp.StatusCode)
	}

	resp, body := f.do(t, http.MethodPost, "/v1/invalidate", `{"customers":["acme"],"from":"2025-01-20","to":"2025-01-21"}`, auth...)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != `{"matched":1,"marked_stale":1,"refreshed":1,"apis":0,"apis_unanswered":0}` {
		t.Fatalf("invalidate: %d %s", resp.StatusCode, body)
	}
	call := <-f.invalidations
	want := dashcache.Changed{Customers: []string{"acme"}, From: date(t, "2025-01-20"), To: date(t, "2025-01-21")}
	if !slices.Equal(call.ch.Customers, want.Customers) || call.ch.From != want.From || call.ch.To != want.To {
		t.Errorf("Invalidate(%+v), want %+v", call.ch, want)
	}
	if call.readWithin != 24*time.Hour {
		t.Errorf("read within %s, want ReadWithin, 24h", call.readWithin)
	}
	if read, err := f.store.Index.ReadSince(context.Background(), "acme", now.Add(-time.Minute)); err != nil || !slices.Equal(read, []dashcache.ReportKey{k}) {
		t.Errorf("reads in Redis at the invalidation: %v, %v; want the read just served", read, err)
	}

	resp, body = f.do(t, http.MethodPost, "/v1/invalidate", `{"customers":"*","from":"2025-01-20","to":"2025-01-20"}`, auth...)
	if call := <-f.invalidations; resp.StatusCode != http.StatusOK || call.ch.Customers != nil {
		t.Errorf(`customers "*": %d %s, Invalidate got customers %v, want nil (every customer)`, resp.StatusCode, body, call.ch.Customers)
	}

	for _, c := range []struct{ body, detail string }{
		{`not json`, "must be JSON"},
		{`{"customers":["acme"],"from":"2025-01-20","colour":"red"}`, "unknown field"},
		{`{"customers":"acme","from":"2025-01-20","to":"2025-01-20"}`, "must be a list of names"},
		{`{"customers":[],"from":"2025-01-20","to":"2025-01-20"}`, "customers is required"},
		{`{"customers":["acme","*"],"from":"2025-01-20","to":"2025-01-20"}`, "must be given alone"},
		{`{"customers":["ac|me"],"from":"2025-01-20","to":"2025-01-20"}`, "may contain only"},
		{`{"customers":["acme"],"to":"2025-01-20"}`, "from is required"},
		{`{"customers":["acme"],"from":"2025-01-20","to":"2025-01-19"}`, "must not be after"},
		{`{"customers":["acme"],"from":"2099-01-01","to":"2099-01-01"}`, "in the future"},
	} {
		resp, body := f.do(t, http.MethodPost, "/v1/invalidate", c.body, auth...)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, c.detail) {
			t.Errorf("body %s: %d %s, want 400 mentioning %q", c.body, resp.StatusCode, body, c.detail)
		}
	}
	if resp, _ := f.do(t, http.MethodPost, "/v1/invalidate", `{"customers":["`+strings.Repeat("a", 70000)+`"]}`, auth...); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d, want 413", resp.StatusCode)
	}
	if resp, _ := f.do(t, http.MethodGet, "/v1/invalidate", "", auth...); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/invalidate: %d, want 405", resp.StatusCode)
	}
	if resp, _ := f.do(t, http.MethodPost, "/v1/invalidate", `{"customers":"*","from":"2025-01-20"}`); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
	if len(f.invalidations) != 0 {
		t.Errorf("%d bad requests reached the queue", len(f.invalidations))
	}
}

// TestReadsNotTracked: with ReadWithin 0, reads are not recorded, and an
// invalidation refreshes nothing at once.
func TestReadsNotTracked(t *testing.T) {
	f := newFixture(t)
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	fill(t, f.store, k, `{"n":1}`)
	f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31")
	f.do(t, http.MethodPost, "/v1/invalidate", `{"customers":["acme"],"from":"2025-01-20","to":"2025-01-20"}`)
	if call := <-f.invalidations; call.readWithin != 0 {
		t.Errorf("read within %s, want 0", call.readWithin)
	}
	if read, _ := f.store.Index.ReadSince(context.Background(), "acme", time.Time{}); len(read) != 0 {
		t.Errorf("reads recorded without tracking: %v", read)
	}
}

// TestMarkedStaleLeavesL1: a report marked stale is dropped from L1 by the
// notification, and then served stale, with a refresh.
func TestMarkedStaleLeavesL1(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = 1 << 20 })
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	f.fillSeen(t, k, `{"n":1}`, now.Add(-3*time.Second), time.Hour)
	q := "customer=acme&from=2025-01-01&to=2025-01-31"
	if resp, _ := f.get(t, q); resp.Header.Get("X-Cache") != "hit" {
		t.Fatalf("first read: X-Cache %q", resp.Header.Get("X-Cache"))
	}
	if _, n := api.L1Size(f.srv); n != 1 {
		t.Fatalf("L1 holds %d reports, want the one read", n)
	}
	if marked, err := f.store.Cache.MarkStale(context.Background(), []dashcache.ReportKey{k}, now); err != nil || len(marked) != 1 {
		t.Fatalf("MarkStale: %v, %v", marked, err)
	}
	wait.For(t, "L1 to drop the report marked stale", 5*time.Second, func() bool {
		_, n := api.L1Size(f.srv)
		return n == 0
	})
	resp, _ := f.get(t, q)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "stale" {
		t.Fatalf("after marking: %d X-Cache %q, want 200 stale", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	select {
	case c := <-f.warms:
		if c.key != k.String() {
			t.Errorf("refreshed %s, want %s", c.key, k)
		}
	case <-time.After(5 * time.Second):
		t.Error("no refresh of the stale report")
	}
}

func date(t *testing.T, s string) dashcache.Day {
	t.Helper()
	d, ok := dashcache.ParseDay(s)
	if !ok {
		t.Fatalf("%q is no date", s)
	}
	return d
}

// TestHandOverReads: asked by an invalidation anywhere, an API process hands
// the reads it saw to the index at once, and answers.
func TestHandOverReads(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.ReadWithin = 24 * time.Hour })
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	fill(t, f.store, k, `{"n":1}`)
	if resp, _ := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31"); resp.StatusCode != http.StatusOK {
		t.Fatalf("read: %d", resp.StatusCode)
	}
	ctx := context.Background()
	if read, _ := f.store.Index.ReadSince(ctx, "acme", time.Time{}); len(read) != 0 {
		t.Fatalf("reads handed over before they were asked for: %v", read)
	}
	asked, answered, err := f.store.Cache.HandOverReads(ctx, 5*time.Second)
	if err != nil || asked != 1 || answered != 1 {
		t.Fatalf("HandOverReads = %d asked, %d answered, %v; want 1, 1", asked, answered, err)
	}
	if read, err := f.store.Index.ReadSince(ctx, "acme", time.Time{}); err != nil || !slices.Equal(read, []dashcache.ReportKey{k}) {
		t.Errorf("the reads after the hand-over: %v, %v; want the report read", read, err)
	}
}

// TestAdminWhenTheQueueFails: a warm whose enqueue fails, an invalidation
// whose queue fails and usage without Redis answer 503, saying to try again
// and nothing of the failure's internals; a customer past its budget is
// skipped by a warm, with the reason.
func TestAdminWhenTheQueueFails(t *testing.T) {
	f := newFixture(t)
	resp, body := f.do(t, http.MethodPost, "/v1/warm", `{"customers":["spent","acme"],"ranges":["yesterday"]}`)
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(body, `"result":"skipped","detail":"spent has used its 100 BI calls of today"`) || !strings.Contains(body, `"skipped":1`) {
		t.Errorf("warm of a spent customer: %d %s, want it skipped with the reason", resp.StatusCode, body)
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/warm", `{"customers":["acme","broken"],"ranges":["yesterday"]}`},
		{"/v1/invalidate", `{"customers":["broken"],"from":"2025-01-20","to":"2025-01-20"}`},
	} {
		resp, body := f.do(t, http.MethodPost, c.path, c.body)
		if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "10.0.0.1") {
			t.Errorf("%s with the queue failing: %d %s, want 503 without the address", c.path, resp.StatusCode, body)
		}
	}
	f.mini.Close()
	if resp, body := f.do(t, http.MethodGet, "/v1/usage", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("usage without Redis: %d %s, want 503", resp.StatusCode, body)
	}
}
