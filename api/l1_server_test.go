package api_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// TestL1ServesHitsWithoutRedis: a report read once is served from memory:
// no Redis command for the hits after.
func TestL1ServesHitsWithoutRedis(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = 1 << 20 })
	f.fillSeen(t, key(t, "acme", "2025-01-01", "2025-01-31"), `{"n":1}`, now.Add(-3*time.Second), time.Hour)
	q := "customer=acme&from=2025-01-01&to=2025-01-31"
	f.get(t, q)
	before := f.mini.CommandCount()
	for range 20 {
		if resp, _ := f.get(t, q); resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "hit" {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("X-Cache"))
		}
	}
	if n := f.mini.CommandCount() - before; n != 0 {
		t.Errorf("20 hits of a held report cost %d Redis commands, want 0", n)
	}
}

// TestL1FollowsFills: once a fill's notification has reached the server, no
// read gets the old bytes.
func TestL1FollowsFills(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = 1 << 20 })
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	fill(t, f.store, k, `{"n":1}`)
	q := "customer=acme&from=2025-01-01&to=2025-01-31"
	resp, _ := f.get(t, q)
	old := resp.Header.Get("Etag")
	fill(t, f.store, k, `{"n":2}`)
	wait.For(t, "the refill to reach the reader", 5*time.Second, func() bool {
		resp, body := f.get(t, q)
		return resp.Header.Get("Etag") != old && strings.Contains(body, `"n":2`)
	})
	for range 20 {
		if _, body := f.get(t, q); !strings.Contains(body, `"n":2`) {
			t.Fatalf("the old bytes after the new ones: %s", body)
		}
	}
}

// TestL1SubscriptionMetric: dashcache_l1_subscription_up is 1 while the
// subscription to fill notifications is up, 0 while Redis is away and after
// Shutdown.
func TestL1SubscriptionMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *api.Config) { c.Registerer = reg })
	up := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "dashcache_l1_subscription_up" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no dashcache_l1_subscription_up")
		return 0
	}
	if v := up(); v != 1 {
		t.Fatalf("dashcache_l1_subscription_up = %v once started, want 1", v)
	}
	f.mini.Close()
	wait.For(t, "the metric to show the subscription down", 10*time.Second, func() bool { return up() == 0 })
	if err := f.mini.Restart(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the metric to show the subscription back", 10*time.Second, func() bool { return up() == 1 })
	f.srv.Shutdown(t.Context())
	if v := up(); v != 0 {
		t.Errorf("dashcache_l1_subscription_up = %v after Shutdown, want 0", v)
	}
}

// TestL1Bound: the L1 never holds more bytes than its bound, however many
// reports are read.
func TestL1Bound(t *testing.T) {
	const bound = 256 << 10
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = bound })
	for i := range 10000 {
		customer := fmt.Sprintf("c%d", i)
		k := key(t, customer, "2025-01-01", "2025-01-31")
		f.mini.Set(store.EntryKey(k), string(store.NewEntry(k, []byte(`{"n":1}`), now, time.Second, time.Hour)))
		req := httptest.NewRequest(http.MethodGet, "/v1/reports?customer="+customer+"&from=2025-01-01&to=2025-01-31", nil)
		req.Host = "localhost"
		w := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("report %d: %d %s", i, w.Code, w.Body)
		}
		if size, _ := api.L1Size(f.srv); size > bound {
			t.Fatalf("after %d reports the L1 holds %d bytes, over its bound of %d", i+1, size, bound)
		}
	}
	size, n := api.L1Size(f.srv)
	t.Logf("10,000 reports read: the L1 holds the last %d of them in %d bytes", n, size)
	if n < 100 {
		t.Errorf("the L1 holds only %d reports", n)
	}
}

// TestDecompressedBodyCharged: a compressed report's JSON, once a client
// that does not accept gzip asks for it, is kept with the report and
// charged to L1 once; with identity reads of many large reports the bound
// still holds, and a JSON too large to keep leaves L1 as it was.
func TestDecompressedBodyCharged(t *testing.T) {
	const bound = 64 << 10
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = bound })
	big := `{"series":[` + strings.Repeat(`{"date":"2025-01-01","revenue":1234.5},`, 100) + `{}]}`
	read := func(customer, accept string) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/v1/reports?customer="+customer+"&from=2025-01-01&to=2025-01-31", nil)
		req.Host = "localhost"
		req.Header.Set("Accept-Encoding", accept)
		w := httptest.NewRecorder()
		f.srv.Handler().ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", customer, w.Code, w.Body)
		}
		return w.Body.String()
	}
	f.fillSeen(t, key(t, "acme", "2025-01-01", "2025-01-31"), big, now.Add(-3*time.Second), time.Hour)
	read("acme", "gzip")
	zipped, _ := api.L1Size(f.srv)
	plain := read("acme", "identity")
	charged, _ := api.L1Size(f.srv)
	if charged != zipped+int64(len(plain)) {
		t.Errorf("L1 holds %d bytes after an identity read, %d before: want the %d of the JSON more", charged, zipped, len(plain))
	}
	read("acme", "identity")
	if again, _ := api.L1Size(f.srv); again != charged {
		t.Errorf("a second identity read: %d bytes, want %d (charged once)", again, charged)
	}
	for i := range 200 {
		customer := fmt.Sprintf("c%d", i)
		f.fillSeen(t, key(t, customer, "2025-01-01", "2025-01-31"), big, now.Add(-3*time.Second), time.Hour)
		read(customer, "gzip")
		read(customer, "identity")
		if size, _ := api.L1Size(f.srv); size > bound {
			t.Fatalf("after %d reports read by identity clients the L1 holds %d bytes, over its bound of %d", i+1, size, bound)
		}
	}

	// Where the JSON would make the report cost more than one report may
	// (an eighth of L1), it is not kept: the report and the others stay.
	f = newFixture(t, func(c *api.Config) { c.L1Bytes = 32 << 10 })
	for i := range 5 {
		customer := fmt.Sprintf("c%d", i)
		f.fillSeen(t, key(t, customer, "2025-01-01", "2025-01-31"), big, now.Add(-3*time.Second), time.Hour)
		read(customer, "gzip")
	}
	before, held := api.L1Size(f.srv)
	for range 3 {
		if body := read("c0", "identity"); !strings.Contains(body, `"data":`+big) {
			t.Fatalf("identity read of a report whose JSON L1 does not keep: %.80q", body)
		}
	}
	if after, still := api.L1Size(f.srv); after != before || still != held || held != 5 {
		t.Errorf("identity reads of a report too large to keep decompressed: L1 went from %d reports in %d bytes to %d in %d; want all 5 kept, unchanged", held, before, still, after)
	}
}

// TestCompressedRepresentations: a large report is stored compressed; gzip
// and identity clients get the same JSON, each under an ETag of its own
// representation, and 304 for a matching If-None-Match.
func TestCompressedRepresentations(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = 1 << 20 })
	big := `{"series":[` + strings.Repeat(`{"date":"2025-01-01","revenue":1234.5},`, 100) + `{}]}`
	fill(t, f.store, key(t, "acme", "2025-01-01", "2025-01-31"), big)
	q := "customer=acme&from=2025-01-01&to=2025-01-31"
	for range 2 { // from Redis, then from L1
		plain, plainBody := f.get(t, q, "Accept-Encoding", "identity")
		zipped, zippedBody := f.get(t, q, "Accept-Encoding", "br, gzip;q=0.8")
		if plain.Header.Get("Content-Encoding") != "" || zipped.Header.Get("Content-Encoding") != "gzip" ||
			plain.Header.Get("Vary") != "Accept-Encoding" || zipped.Header.Get("Vary") != "Accept-Encoding" {
			t.Fatalf("headers: identity %v, gzip %v", plain.Header, zipped.Header)
		}
		zr, err := gzip.NewReader(strings.NewReader(zippedBody))
		if err != nil {
			t.Fatal(err)
		}
		unzipped, _ := io.ReadAll(zr)
		if !bytes.Equal(unzipped, []byte(plainBody)) || !strings.Contains(plainBody, `"data":`+big) || len(zippedBody) >= len(plainBody)/3 {
			t.Fatalf("gzip %d bytes, identity %d: not the same JSON, or barely compressed", len(zippedBody), len(plainBody))
		}
		pt, zt := plain.Header.Get("Etag"), zipped.Header.Get("Etag")
		if pt == zt {
			t.Errorf("both representations share the ETag %s", pt)
		}
		for _, c := range []struct{ accept, inm string }{{"identity", pt}, {"gzip", zt}} {
			if resp, _ := f.get(t, q, "Accept-Encoding", c.accept, "If-None-Match", c.inm); resp.StatusCode != http.StatusNotModified {
				t.Errorf("%s client with its ETag: %d, want 304", c.accept, resp.StatusCode)
			}
		}
		if resp, _ := f.get(t, q, "Accept-Encoding", "identity", "If-None-Match", zt); resp.StatusCode != http.StatusOK {
			t.Errorf("an identity client with the gzip ETag: %d, want 200", resp.StatusCode)
		}
	}
}

// TestFastPathAgrees: a hit served on the fast path (fasthttp, as the api
// role serves hits) is answered as the net/http handler answers it: same
// status, headers but Date, and body, for gzip and identity clients, 304s,
// and stale reports; and the fast path did serve each of them.
func TestFastPathAgrees(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.L1Bytes = 1 << 20 })
	big := `{"series":[` + strings.Repeat(`{"date":"2025-01-01","revenue":1234.5},`, 100) + `{}]}`
	f.fillSeen(t, key(t, "acme", "2025-01-01", "2025-01-31"), big, now.Add(-3*time.Second), time.Hour)
	f.fillSeen(t, key(t, "acme", "2025-02-01", "2025-02-28"), `{"n":1}`, now.Add(-3*time.Second), time.Hour)
	f.fillSeen(t, key(t, "acme", "2025-01-01", "2025-01-02"), `{"n":2}`, now.Add(-90*time.Minute), time.Hour) // stale, within StaleFor
	var fast atomic.Int64
	fastURL := "http://" + serveFront(t, func(c *fasthttp.RequestCtx) bool {
		served := f.srv.ServeFast(c)
		if served {
			fast.Add(1)
		}
		return served
	}, http.NotFoundHandler())
	netHTTP := httptest.NewServer(f.srv.Handler())
	defer netHTTP.Close()
	get := func(base, query string, header ...string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/reports?"+query, nil)
		req.Host = "localhost"
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := checkedTransport(t, http.DefaultTransport).RoundTrip(req) // no transparent gunzip
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	const big1, small, stale = "customer=acme&from=2025-01-01&to=2025-01-31", "customer=acme&from=2025-02-01&to=2025-02-28", "customer=acme&from=2025-01-01&to=2025-01-02"
	zipped, _ := get(netHTTP.URL, big1, "Accept-Encoding", "gzip")
	plain, _ := get(netHTTP.URL, big1, "Accept-Encoding", "identity")
	cases := [][]string{
		{big1, "Accept-Encoding", "gzip"},
		{big1, "Accept-Encoding", "identity"},
		{big1, "Accept-Encoding", "gzip", "If-None-Match", zipped.Header.Get("Etag")},
		{big1, "Accept-Encoding", "identity", "If-None-Match", plain.Header.Get("Etag")},
		{big1, "Accept-Encoding", "identity", "If-None-Match", zipped.Header.Get("Etag")},
		{small, "Accept-Encoding", "gzip"},
		{stale, "Accept-Encoding", "gzip"},
	}
	for _, c := range cases {
		want, wantBody := get(netHTTP.URL, c[0], c[1:]...)
		before := fast.Load()
		got, gotBody := get(fastURL, c[0], c[1:]...)
		if fast.Load() != before+1 {
			t.Errorf("%v: not served on the fast path", c)
		}
		want.Header.Del("Date")
		got.Header.Del("Date")
		if got.StatusCode != want.StatusCode || gotBody != wantBody || !reflect.DeepEqual(got.Header, want.Header) {
			t.Errorf("%v:\nfast     %d %v %.80q\nnet/http %d %v %.80q", c, got.StatusCode, got.Header, gotBody, want.StatusCode, want.Header, wantBody)
		}
	}
}
