package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache/client"
)

// fake is a dashcache API that answers each request with the handler a
// test gives it, which is told the request's number (from 0), and keeps
// every request it got.
type fake struct {
	url string
	mu  sync.Mutex
	got []request
}

// request is what the fake kept of a request.
type request struct {
	method, path string
	query        map[string][]string
	header       http.Header
	body         string
}

func newFake(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, n int)) *fake {
	t.Helper()
	f := &fake{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		n := len(f.got)
		f.got = append(f.got, request{r.Method, r.URL.Path, r.URL.Query(), r.Header.Clone(), string(body)})
		f.mu.Unlock()
		answer(w, r, n)
	}))
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// requests returns the requests the fake got so far.
func (f *fake) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.got...)
}

// newClient returns a client of the fake, cfg's BaseURL set.
func (f *fake) newClient(t *testing.T, cfg client.Config) *client.Client {
	t.Helper()
	cfg.BaseURL = f.url
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// report answers 200 with a report of the query's customer and range, and
// etag.
func report(w http.ResponseWriter, r *http.Request, etag string) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", etag)
	w.Header().Set("X-Cache", "miss")
	w.Header().Set("Age", "3")
	fmt.Fprintf(w, `{"customer":%q,"from":%q,"to":%q,"computed_at":"2025-03-10T14:59:57Z","data":{"revenue":[1,2,3]}}`,
		q.Get("customer"), q.Get("from"), q.Get("to"))
}

// problem answers an RFC 9457 problem, with Retry-After if given.
func problem(w http.ResponseWriter, status int, detail, retryAfter string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}

// pending answers 202, as the server does when a report is not ready within
// the wait.
func pending(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"pending"}`+"\n")
}

func TestGetSendsTheRead(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) { report(w, r, `"e1"`) })
	c := f.newClient(t, client.Config{APIKey: "reader-key-0123456789", UserAgent: "finance-export/2"})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	rep, err := c.Get(ctx, "revenue", "acme & co", "2025-01-01", "2025-01-31")
	if err != nil {
		t.Fatal(err)
	}
	got := f.requests()[0]
	if got.method != http.MethodGet || got.path != "/v1/reports/revenue" || got.query["customer"][0] != "acme & co" ||
		got.query["from"][0] != "2025-01-01" || got.query["to"][0] != "2025-01-31" {
		t.Errorf("request %s %s %v", got.method, got.path, got.query)
	}
	if wait, err := time.ParseDuration(got.query["wait"][0]); err != nil || wait > 4500*time.Millisecond || wait <= 0 {
		t.Errorf("wait=%s under a deadline 5 s away; want at most 9/10 of what is left", got.query["wait"][0])
	}
	if a, ua := got.header.Get("Authorization"), got.header.Get("User-Agent"); a != "Bearer reader-key-0123456789" || ua != "finance-export/2" {
		t.Errorf("Authorization %q, User-Agent %q", a, ua)
	}
	if got.header.Get("If-None-Match") != "" {
		t.Errorf("a first read sent If-None-Match %q", got.header.Get("If-None-Match"))
	}
	want := client.Report{Customer: "acme & co", From: "2025-01-01", To: "2025-01-31", ComputedAt: time.Date(2025, 3, 10, 14, 59, 57, 0, time.UTC),
		XCache: client.CacheMiss, ETag: `"e1"`, Age: 3 * time.Second}
	if rep.Customer != want.Customer || rep.From != want.From || rep.To != want.To || !rep.ComputedAt.Equal(want.ComputedAt) ||
		rep.XCache != want.XCache || rep.ETag != want.ETag || rep.Age != want.Age || rep.Revalidated {
		t.Errorf("report %+v, want %+v", rep, want)
	}
	if string(rep.Data) != `{"revenue":[1,2,3]}` || !strings.HasPrefix(string(rep.Body), `{"customer":"acme & co"`) {
		t.Errorf("Data %s, Body %s", rep.Data, rep.Body)
	}

	if _, err := c.Get(ctx, "", "acme", "2025-01-01", "2025-01-31"); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[1]; got.path != "/v1/reports" || got.query["wait"][0] == "" {
		t.Errorf("the default report: %s %v", got.path, got.query)
	}
}

// TestGetRevalidates: a second read of a report sends its ETag back; on 304
// it returns the body kept, a copy the caller may change.
func TestGetRevalidates(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if r.Header.Get("If-None-Match") == `"e1"` {
			w.Header().Set("ETag", `"e1"`)
			w.Header().Set("X-Cache", "stale")
			w.WriteHeader(http.StatusNotModified)
			return
		}
		report(w, r, `"e1"`)
	})
	c := f.newClient(t, client.Config{})
	first, err := c.Get(t.Context(), "", "acme", "2025-01-01", "2025-01-31")
	if err != nil {
		t.Fatal(err)
	}
	body := string(first.Body)
	first.Body[0], first.Data[0] = 'X', 'X' // the caller's own copy
	second, err := c.Get(t.Context(), "", "acme", "2025-01-01", "2025-01-31")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[1].header.Get("If-None-Match"); got != `"e1"` {
		t.Errorf("the second read sent If-None-Match %q, want the ETag of the first", got)
	}
	if !second.Revalidated || string(second.Body) != body || string(second.Data) != `{"revenue":[1,2,3]}` || second.ETag != `"e1"` ||
		second.XCache != client.CacheStale || second.Customer != "acme" {
		t.Errorf("after a 304: %+v (body %s), want the kept body revalidated, X-Cache stale", second, second.Body)
	}
	// Another customer, range or report is another read.
	for _, read := range [][4]string{{"", "globex", "2025-01-01", "2025-01-31"}, {"", "acme", "2025-01-01", "2025-01-30"}, {"revenue", "acme", "2025-01-01", "2025-01-31"}} {
		if _, err := c.Get(t.Context(), read[0], read[1], read[2], read[3]); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range f.requests()[2:] {
		if inm := r.header.Get("If-None-Match"); inm != "" {
			t.Errorf("%s %v sent If-None-Match %s", r.path, r.query, inm)
		}
	}
}

// TestCacheBounded: the reports kept fit CacheBytes, the least recently
// read dropped first; none are kept with CacheBytes < 0.
func TestCacheBounded(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) { report(w, r, `"e"`) })
	one := len(`{"customer":"c1","from":"2025-01-01","to":"2025-01-31","computed_at":"2025-03-10T14:59:57Z","data":{"revenue":[1,2,3]}}`) +
		len(`"e"`) + len("c1") + 2*len("2025-01-01")
	cases := []struct {
		name       string
		cacheBytes int64
		reads      []string // customers, read in turn
		revalidate []bool   // whether each read sent If-None-Match
	}{
		// c2, read least recently, makes room for c3.
		{"two fit", int64(2 * one), []string{"c1", "c2", "c1", "c3", "c1", "c2"}, []bool{false, false, true, false, true, false}},
		{"none", -1, []string{"c1", "c1"}, []bool{false, false}},
		{"too big to keep", int64(one - 1), []string{"c1", "c1"}, []bool{false, false}},
	}
	for _, tc := range cases {
		c := f.newClient(t, client.Config{CacheBytes: tc.cacheBytes})
		before := len(f.requests())
		for _, customer := range tc.reads {
			if _, err := c.Get(t.Context(), "", customer, "2025-01-01", "2025-01-31"); err != nil {
				t.Fatal(err)
			}
		}
		for i, r := range f.requests()[before:] {
			if sent := r.header.Get("If-None-Match") != ""; sent != tc.revalidate[i] {
				t.Errorf("%s: read %d (%s) sent If-None-Match: %v, want %v", tc.name, i, tc.reads[i], sent, tc.revalidate[i])
			}
		}
	}
}

// TestGetWaitsThroughPending: a 202 is asked again after its Retry-After,
// and the read that follows gets the report.
func TestGetWaitsThroughPending(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 0 {
			pending(w)
			return
		}
		report(w, r, `"e1"`)
	})
	c := f.newClient(t, client.Config{Wait: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	rep, err := c.Get(ctx, "", "acme", "2025-01-01", "2025-01-31")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Customer != "acme" || len(f.requests()) != 2 {
		t.Errorf("%d requests, report %+v; want a 202 then the report", len(f.requests()), rep)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("asked again after %s, before the 202's Retry-After (1 s)", took)
	}
	if wait := f.requests()[0].query["wait"][0]; wait != "50ms" {
		t.Errorf("wait=%s, want Config.Wait, 50ms", wait)
	}
}

// TestPendingAtTheDeadline: when the pause after a 202 would pass ctx's
// deadline, Get returns ErrPending at once.
func TestPendingAtTheDeadline(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) { pending(w) })
	c := f.newClient(t, client.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 900*time.Millisecond) // less than the 202's Retry-After
	defer cancel()
	_, err := c.Get(ctx, "", "acme", "2025-01-01", "2025-01-31")
	if !errors.Is(err, client.ErrPending) || ctx.Err() != nil {
		t.Errorf("Get: %v (ctx: %v); want ErrPending before the deadline", err, ctx.Err())
	}
	if n := len(f.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	// Ended during the pause: ErrPending and ctx's error.
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	f2 := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) { pending(w); cancel() })
	_, err = f2.newClient(t, client.Config{}).Get(ctx, "", "acme", "2025-01-01", "2025-01-31")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Get with ctx canceled after the 202: %v, want context.Canceled", err)
	}
}

// TestRetryAfter: a 429 or 503 with a Retry-After is asked again after it,
// when it ends before the deadline and within MaxRetryWait; else its
// *Error is returned at once.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		status       int
		retryAfter   string
		timeout      time.Duration // of ctx; 0: none
		maxRetryWait time.Duration
		requests     int // requests made
		sentinel     error
	}{
		{"429 waited out", http.StatusTooManyRequests, "1", 10 * time.Second, 0, 2, nil},
		{"503 waited out", http.StatusServiceUnavailable, "1", 0, 0, 2, nil},
		{"past the deadline", http.StatusTooManyRequests, "2", 1500 * time.Millisecond, 0, 1, client.ErrRateLimited},
		{"over MaxRetryWait", http.StatusTooManyRequests, "61", 0, 0, 1, client.ErrRateLimited},
		{"MaxRetryWait negative", http.StatusServiceUnavailable, "1", 0, -1, 1, client.ErrUnavailable},
		{"503 without Retry-After", http.StatusServiceUnavailable, "", 0, 0, 1, client.ErrUnavailable},
		{"502 is not asked again", http.StatusBadGateway, "1", 0, 0, 1, client.ErrReportFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, func(w http.ResponseWriter, r *http.Request, n int) {
				if n == 0 {
					problem(w, tc.status, "customer acme already has 4 reports being computed", tc.retryAfter)
					return
				}
				report(w, r, `"e1"`)
			})
			c := f.newClient(t, client.Config{MaxRetryWait: tc.maxRetryWait})
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			start := time.Now()
			rep, err := c.Get(ctx, "", "acme", "2025-01-01", "2025-01-31")
			if n := len(f.requests()); n != tc.requests {
				t.Errorf("%d requests, want %d", n, tc.requests)
			}
			if tc.sentinel == nil {
				if err != nil || rep.Customer != "acme" {
					t.Fatalf("Get: %v, want the report", err)
				}
				if took := time.Since(start); took < time.Second {
					t.Errorf("asked again after %s, before the Retry-After (1 s)", took)
				}
				return
			}
			var e *client.Error
			if !errors.As(err, &e) || !errors.Is(err, tc.sentinel) || e.Status != tc.status || ctx.Err() != nil {
				t.Fatalf("Get: %v (ctx: %v); want at once an *Error %d matching %v", err, ctx.Err(), tc.status, tc.sentinel)
			}
			if want, _ := time.ParseDuration(tc.retryAfter + "s"); e.RetryAfter != want || e.Detail != "customer acme already has 4 reports being computed" {
				t.Errorf("RetryAfter %s, Detail %q", e.RetryAfter, e.Detail)
			}
		})
	}
}

// TestCanceledWhileWaitingOut: ctx ending during a Retry-After returns its
// error and the answer's.
func TestCanceledWhileWaitingOut(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	answered := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		problem(w, http.StatusTooManyRequests, "too many", "30")
		close(answered)
	})
	go func() { <-answered; cancel() }()
	_, err := f.newClient(t, client.Config{}).Get(ctx, "", "acme", "2025-01-01", "2025-01-31")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Get: %v, want context.Canceled", err)
	}
}

// TestErrors: every error answer is an *Error with the problem's fields,
// matching its status's sentinel; an answer that is not problem+json keeps
// the start of its body.
func TestErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status   int
		sentinel error
	}{
		{http.StatusBadRequest, client.ErrBadRequest},
		{http.StatusUnauthorized, client.ErrUnauthorized},
		{http.StatusForbidden, client.ErrForbidden},
		{http.StatusNotFound, client.ErrNotFound},
		{http.StatusTooManyRequests, client.ErrRateLimited},
		{http.StatusBadGateway, client.ErrReportFailed},
		{http.StatusServiceUnavailable, client.ErrUnavailable},
		{http.StatusInternalServerError, nil},
	}
	sentinels := []error{client.ErrBadRequest, client.ErrUnauthorized, client.ErrForbidden, client.ErrNotFound,
		client.ErrRateLimited, client.ErrReportFailed, client.ErrUnavailable, client.ErrPending}
	for _, tc := range cases {
		f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			problem(w, tc.status, fmt.Sprintf("what to do about %d", tc.status), "")
		})
		_, err := f.newClient(t, client.Config{}).Get(t.Context(), "", "acme", "2025-01-01", "2025-01-31")
		var e *client.Error
		if !errors.As(err, &e) || e.Status != tc.status || e.Title != http.StatusText(tc.status) || e.Detail != fmt.Sprintf("what to do about %d", tc.status) {
			t.Errorf("%d: %#v", tc.status, err)
			continue
		}
		for _, s := range sentinels {
			if errors.Is(err, s) != (s == tc.sentinel) {
				t.Errorf("%d: errors.Is(err, %v) = %v", tc.status, s, !(s == tc.sentinel))
			}
		}
	}

	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>\n  <h1>502 Bad Gateway</h1>\n"+strings.Repeat("x", 1000)+"</html>")
	})
	_, err := f.newClient(t, client.Config{}).Get(t.Context(), "", "acme", "2025-01-01", "2025-01-31")
	var e *client.Error
	if !errors.As(err, &e) || e.Title != "Bad Gateway" || !strings.HasPrefix(e.Detail, "<html> <h1>502 Bad Gateway</h1> xxx") || len(e.Detail) > 512 {
		t.Errorf("a proxy's error page: %v", err)
	}
}

// TestRetryAfterDate: a Retry-After given as an HTTP-date counts from the
// answer's Date.
func TestRetryAfterDate(t *testing.T) {
	t.Parallel()
	date := time.Date(2025, 3, 10, 15, 0, 0, 0, time.UTC)
	f := newFake(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Date", date.Format(http.TimeFormat))
		problem(w, http.StatusTooManyRequests, "budget used", date.Add(9*time.Hour).Format(http.TimeFormat))
	})
	_, err := f.newClient(t, client.Config{}).Get(t.Context(), "", "acme", "2025-01-01", "2025-01-31")
	var e *client.Error
	if !errors.As(err, &e) || e.RetryAfter != 9*time.Hour {
		t.Errorf("Get: %v, want a 429 with RetryAfter 9h", err)
	}
}

// TestBadReportName: a name the server could not have is refused before
// any request: it must not lead the request elsewhere.
func TestBadReportName(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) { report(w, r, `"e1"`) })
	for _, name := range []string{"..", "../warm", "Revenue", "a/b"} {
		if _, err := f.newClient(t, client.Config{}).Get(t.Context(), name, "acme", "2025-01-01", "2025-01-31"); !errors.Is(err, client.ErrBadRequest) {
			t.Errorf("report %q: %v, want ErrBadRequest", name, err)
		}
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("%d requests sent", n)
	}
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg  client.Config
		want []string // in the error, all of them
	}{
		{client.Config{}, []string{"BaseURL is required"}},
		{client.Config{BaseURL: "ftp://h"}, []string{"http:// or https://"}},
		{client.Config{BaseURL: "dashcache-api:8080"}, []string{"http:// or https://"}},
		{client.Config{BaseURL: "http://h?x=1"}, []string{"no query"}},
		{client.Config{BaseURL: "http://h", Wait: 31 * time.Second}, []string{"Wait is 31s"}},
		{client.Config{Wait: time.Minute}, []string{"BaseURL is required", "Wait is 1m0s"}},
	}
	for _, tc := range cases {
		_, err := client.New(tc.cfg)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v): %v, want an error saying %q", tc.cfg, err, w)
			}
		}
	}
	if _, err := client.New(client.Config{BaseURL: "https://dashcache.example.com/", Wait: -1}); err != nil {
		t.Errorf("a valid config: %v", err)
	}
}

// TestBaseURLPath: a base URL's path is kept, as for an API behind a proxy
// under a prefix.
func TestBaseURLPath(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) { report(w, r, `"e1"`) })
	c, err := client.New(client.Config{BaseURL: f.url + "/dashcache/", Wait: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(t.Context(), "orders", "acme", "2025-01-01", "2025-01-31"); err != nil {
		t.Fatal(err)
	}
	if got := f.requests()[0]; got.path != "/dashcache/v1/reports/orders" || got.query["wait"][0] != "0ms" {
		t.Errorf("%s %v, want /dashcache/v1/reports/orders with wait=0ms", got.path, got.query)
	}
}

// TestAdmin: Warm and Invalidate post their request with the admin token
// and return the server's counts.
func TestAdmin(t *testing.T) {
	t.Parallel()
	f := newFake(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/warm":
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"keys":[{"key":"acme|2025-03-09|2025-03-09","result":"enqueued"},{"key":"globex|2025-03-09|2025-03-09","result":"skipped","detail":"budget used"}],"enqueued":1,"duplicate":0,"skipped":1}`)
		case "/v1/invalidate":
			io.WriteString(w, `{"matched":7,"marked_stale":7,"refreshed":4,"apis":3,"apis_unanswered":0}`)
		}
	})
	c := f.newClient(t, client.Config{APIKey: "reader-key-0123456789", AdminToken: "admin-token-0123456789"})
	warmed, err := c.Warm(t.Context(), client.WarmRequest{Customers: []string{"acme", "globex"}, Ranges: []string{"yesterday"}})
	if err != nil {
		t.Fatal(err)
	}
	if warmed.Enqueued != 1 || warmed.Skipped != 1 || len(warmed.Keys) != 2 || warmed.Keys[1].Result != client.WarmSkipped || warmed.Keys[1].Detail != "budget used" {
		t.Errorf("warm: %+v", warmed)
	}
	inv, err := c.Invalidate(t.Context(), client.InvalidateRequest{Customers: []string{client.AllCustomers}, From: "2025-03-01"})
	if err != nil {
		t.Fatal(err)
	}
	if *inv != (client.InvalidateResult{Matched: 7, MarkedStale: 7, Refreshed: 4, APIs: 3}) {
		t.Errorf("invalidate: %+v", inv)
	}
	reqs := f.requests()
	wantBodies := []string{`{"customers":["acme","globex"],"ranges":["yesterday"]}`, `{"customers":["*"],"from":"2025-03-01","to":"2025-03-01"}`}
	for i, r := range reqs {
		if r.method != http.MethodPost || r.header.Get("Authorization") != "Bearer admin-token-0123456789" ||
			r.header.Get("Content-Type") != "application/json" || r.body != wantBodies[i] {
			t.Errorf("%s %s, Authorization %q, body %s; want POST with the admin token and %s", r.method, r.path, r.header.Get("Authorization"), r.body, wantBodies[i])
		}
	}
}
