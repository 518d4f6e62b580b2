package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/internal/front"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// now is the fixed clock of these tests: today is 2025-03-10.
var now = time.Date(2025, 3, 10, 15, 0, 0, 0, time.UTC)

type fixture struct {
	srv           *api.Server
	url           string       // of the server, behind a front as the api role serves it
	client        *http.Client // checks each request and answer against the OpenAPI document
	store         store.Store
	mini          *miniredis.Miniredis
	enqueued      atomic.Int64        // calls of Ensure
	warms         chan warmCall       // every call of Warm
	invalidations chan invalidateCall // every call of Invalidate
}

type invalidateCall struct {
	ch         dashcache.Changed
	readWithin time.Duration
}

// Ensure is the fixture's queue for readers: it only counts, and answers
// "duplicate" after the first call. It refuses customer "crowded" (too many
// fills outstanding) and "down" (the breaker is open).
func (f *fixture) Ensure(_ context.Context, k dashcache.ReportKey) (bool, error) {
	switch k.Customer {
	case "crowded":
		return false, &dashcache.Refusal{Reason: dashcache.ReasonPending, RetryAfter: 1500 * time.Millisecond, Detail: "crowded has too many fills outstanding"}
	case "down":
		return false, &dashcache.Refusal{Reason: dashcache.ReasonBreaker, RetryAfter: 20 * time.Second, Detail: "the BI platform is down"}
	}
	return f.enqueued.Add(1) == 1, nil
}

// Warm records the call; customer "busy" has its fill task queued already,
// "spent" has used its daily budget, and the queue fails for "broken".
func (f *fixture) Warm(_ context.Context, k dashcache.ReportKey, r dashcache.Refresh) (bool, error) {
	f.warms <- warmCall{k.String(), r}
	switch k.Customer {
	case "spent":
		return false, &dashcache.Refusal{Reason: dashcache.ReasonBudget, RetryAfter: time.Hour, Detail: "spent has used its 100 BI calls of today"}
	case "broken":
		return false, errQueue
	}
	return k.Customer != "busy", nil
}

// errQueue is the fixture's queue failing.
var errQueue = errors.New("dial tcp 10.0.0.1:6379: connection refused")

// Invalidate records the call and answers counts of one report; the queue
// fails for customer "broken".
func (f *fixture) Invalidate(_ context.Context, ch dashcache.Changed, readWithin time.Duration) (dashcache.Invalidation, error) {
	f.invalidations <- invalidateCall{ch, readWithin}
	if slices.Contains(ch.Customers, "broken") {
		return dashcache.Invalidation{}, errQueue
	}
	return dashcache.Invalidation{Matched: 1, MarkedStale: 1, Refreshed: 1}, nil
}

type warmCall struct {
	key     string
	refresh dashcache.Refresh
}

// warmed drains the Warm calls made so far.
func (f *fixture) warmed() []warmCall {
	var out []warmCall
	for {
		select {
		case c := <-f.warms:
			out = append(out, c)
		default:
			return out
		}
	}
}

// newFixture runs an API server on miniredis whose queue only counts:
// no worker fills anything unless the test does. opts adjust the Config.
func newFixture(t testing.TB, opts ...func(*api.Config)) *fixture {
	t.Helper()
	f := &fixture{mini: miniredis.RunT(t), warms: make(chan warmCall, 1000), invalidations: make(chan invalidateCall, 10), client: checkedClient(t)}
	rdb := redis.NewClient(&redis.Options{Addr: f.mini.Addr(), MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	f.store = store.New(rdb)
	cfg := api.Config{Queue: f, Now: func() time.Time { return now }}
	withStore(t, &cfg, f.store)
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.url = "http://" + serveFront(t, srv.ServeFast, srv.Handler())
	t.Cleanup(func() { srv.Shutdown(context.Background()) }) // before the front's: it answers the waiting readers
	return f
}

// withStore sets the parts of cfg that st gives, and a guard on st (a daily
// budget of 100 calls) for GET /v1/usage.
func withStore(tb testing.TB, cfg *api.Config, st store.Store) {
	tb.Helper()
	g, err := guard.New(guard.Config{State: st.Guards, DailyCalls: 100, Now: func() time.Time { return now }})
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Cache, cfg.Reads, cfg.Usage, cfg.Redis = st.Cache, st.Index, g, st.Cache
}

// serveFront serves on loopback, until the test ends, as the api role
// does: requests go to fast first, on fasthttp, and those it declines to
// slow. It returns the address.
func serveFront(t testing.TB, fast func(*fasthttp.RequestCtx) bool, slow http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := front.New(front.Config{
		Fast: func(c *fasthttp.RequestCtx) bool {
			served := fast(c)
			if served {
				markFast(c) // for the contract's coverage
			}
			return served
		},
		Slow:        slow,
		ReadTimeout: 10 * time.Second, IdleTimeout: time.Minute, WriteTimeout: time.Minute,
		MaxHeaderBytes: 32 << 10, MaxBodyBytes: api.MaxAdminBody,
		Problem: api.Problem,
	})
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	t.Cleanup(func() {
		if err := f.Shutdown(context.Background()); err != nil {
			t.Errorf("shutting the front down: %v", err)
		}
		<-served
	})
	return ln.Addr().String()
}

func (f *fixture) get(t *testing.T, query string, header ...string) (*http.Response, string) {
	t.Helper()
	return f.do(t, http.MethodGet, "/v1/reports?"+query, "", header...)
}

// do sends a request with an optional body (JSON, unless header says
// otherwise) and header name/value pairs.
func (f *fixture) do(t *testing.T, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// fill writes a report as a worker would: lock, fenced write, notify. It was
// computed in 2 s, 3 s before now, and stays fresh for an hour.
func fill(t testing.TB, st store.Store, k dashcache.ReportKey, data string) {
	t.Helper()
	fillAt(t, st, k, data, now.Add(-3*time.Second), time.Hour)
}

// fillAt writes a report computed in 2 s at computedAt, fresh for fresh.
func fillAt(t testing.TB, st store.Store, k dashcache.ReportKey, data string, computedAt time.Time, fresh time.Duration) {
	t.Helper()
	ctx := context.Background()
	l, err := st.Cache.Obtain(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Fill(ctx, store.NewEntry(k, []byte(data), computedAt, 2*time.Second, fresh), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
}

// fillSeen fills a report as fillAt does, and returns once the fixture's
// server has taken its fill notification: a read after it is not raced by
// the notification dropping from L1 what the read put there.
func (f *fixture) fillSeen(t *testing.T, k dashcache.ReportKey, data string, computedAt time.Time, fresh time.Duration) {
	t.Helper()
	before := api.Drops(f.srv)
	fillAt(t, f.store, k, data, computedAt, fresh)
	wait.For(t, "the server to take the fill notification", 5*time.Second, func() bool { return api.Drops(f.srv) != before })
}

func key(t *testing.T, c, from, to string) dashcache.ReportKey {
	k, err := dashcache.ParseReportKey(c, from, to, now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	cases := []struct{ name, query, detail string }{
		{"no parameters", "", "customer is required"},
		{"missing from", "customer=acme&to=2025-01-31", "from is required"},
		{"missing to", "customer=acme&from=2025-01-01", "to is required"},
		{"empty customer", "customer=&from=2025-01-01&to=2025-01-31", "customer is required"},
		{"customer too long", "customer=" + strings.Repeat("a", 65) + "&from=2025-01-01&to=2025-01-31", "at most 64"},
		{"customer with pipe", "customer=acme%7C2025-01-01&from=2025-01-01&to=2025-01-31", "may contain only"},
		{"customer with space", "customer=ac+me&from=2025-01-01&to=2025-01-31", "may contain only"},
		{"customer with braces", "customer=%7Bacme%7D&from=2025-01-01&to=2025-01-31", "may contain only"},
		{"customer with CRLF", "customer=acme%0D%0ASet-Cookie:x&from=2025-01-01&to=2025-01-31", "may contain only"},
		{"customer non-ASCII", "customer=%C3%A4cme&from=2025-01-01&to=2025-01-31", "may contain only"},
		{"bad escape", "customer=%zz&from=2025-01-01&to=2025-01-31", "URL-encoded"},
		{"customer given twice", "customer=acme&customer=globex&from=2025-01-01&to=2025-01-31", "given more than once"},
		{"malformed date", "customer=acme&from=2025/01/01&to=2025-01-31", "real date"},
		{"date with time", "customer=acme&from=2025-01-01T00:00:00Z&to=2025-01-31", "real date"},
		{"unpadded date", "customer=acme&from=2025-1-1&to=2025-01-31", "real date"},
		{"impossible date", "customer=acme&from=2025-02-30&to=2025-03-01", "real date"},
		{"month 13", "customer=acme&from=2025-13-01&to=2025-03-01", "real date"},
		{"from after to", "customer=acme&from=2025-02-01&to=2025-01-31", "must not be after"},
		{"span 367 days", "customer=acme&from=2024-01-01&to=2025-01-01", "spans 367 days"},
		{"to in the future", "customer=acme&from=2025-03-01&to=2025-03-11", "in the future"},
		{"wait not a duration", "customer=acme&from=2025-01-01&to=2025-01-31&wait=soon", "wait must be"},
		{"wait negative", "customer=acme&from=2025-01-01&to=2025-01-31&wait=-1s", "wait must be"},
		{"wait too long", "customer=acme&from=2025-01-01&to=2025-01-31&wait=31s", "wait must be"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := f.get(t, c.query)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			var p struct {
				Status int
				Detail string
			}
			if err := json.Unmarshal([]byte(body), &p); err != nil || p.Status != 400 || !strings.Contains(p.Detail, c.detail) {
				t.Errorf("problem %s (err %v), want status 400 and a detail containing %q", body, err, c.detail)
			}
		})
	}
	if n := f.enqueued.Load(); n != 0 {
		t.Errorf("bad input enqueued %d tasks", n)
	}
	if keys := f.mini.Keys(); len(keys) != 0 {
		t.Errorf("bad input wrote Redis keys %v", keys)
	}
}

func TestLimitsAccepted(t *testing.T) {
	f := newFixture(t)
	// 366 days ending today, a 64-character customer, wait=0: valid, so 202.
	resp, body := f.get(t, "customer="+strings.Repeat("A.b_-9", 10)+"abcd&from=2024-03-10&to=2025-03-10&wait=0")
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Retry-After") != "1" || !strings.Contains(body, `"pending"`) {
		t.Fatalf("status %d Retry-After %q body %s; want 202 pending", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestHitHeadersAndConditional(t *testing.T) {
	f := newFixture(t)
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	fill(t, f.store, k, `{"revenue":1}`)
	resp, body := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31")
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "hit" {
		t.Fatalf("status %d X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
	}
	want := `{"customer":"acme","from":"2025-01-01","to":"2025-01-31","computed_at":"2025-03-10T14:59:57Z","data":{"revenue":1}}`
	if body != want {
		t.Errorf("body %s\nwant %s", body, want)
	}
	if age, cc := resp.Header.Get("Age"), resp.Header.Get("Cache-Control"); age != "3" || cc != "private, max-age=3597" {
		t.Errorf("Age %q Cache-Control %q", age, cc)
	}
	etag := resp.Header.Get("ETag")
	resp, body = f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31", "If-None-Match", etag)
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("conditional GET: status %d body %q, want 304", resp.StatusCode, body)
	}
	if f.enqueued.Load() != 0 {
		t.Error("a hit enqueued a task")
	}
}

// TestMissWaitsForNotification: a reader waiting on a miss is answered by the
// fill's notification, and readers of one key share one enqueue.
func TestMissWaitsForNotification(t *testing.T) {
	f := newFixture(t)
	k := key(t, "globex", "2025-02-01", "2025-02-28")
	type res struct {
		status int
		xcache string
	}
	out := make(chan res, 3)
	for range 3 {
		go func() {
			resp, _ := f.get(t, "customer=globex&from=2025-02-01&to=2025-02-28&wait=20s")
			out <- res{resp.StatusCode, resp.Header.Get("X-Cache")}
		}()
	}
	// Fill once all three readers share the wait (bounded).
	waitReaders(t, f, k.String(), 3)
	fill(t, f.store, k, `{"ok":true}`)
	for range 3 {
		if r := <-out; r.status != 200 || r.xcache != "miss" {
			t.Errorf("reader got %d X-Cache %q, want 200 miss", r.status, r.xcache)
		}
	}
	if n := f.enqueued.Load(); n != 1 {
		t.Errorf("3 readers of one key enqueued %d times, want 1", n)
	}
}

// TestFillBetweenCheckAndSubscribe: a fill that lands after a reader found the
// cache empty but before it registered for the notification still answers that
// reader (no lost wake-up), long before its wait ends.
func TestFillBetweenCheckAndSubscribe(t *testing.T) {
	f := newFixture(t)
	k := key(t, "initech", "2025-01-01", "2025-01-07")
	api.SetBeforeWait(f.srv, func(got dashcache.ReportKey) {
		if got == k {
			fill(t, f.store, k, `{"raced":true}`)
		}
	})
	start := time.Now()
	resp, body := f.get(t, "customer=initech&from=2025-01-01&to=2025-01-07&wait=30s")
	if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != "miss" || !strings.Contains(body, `"raced":true`) {
		t.Fatalf("status %d X-Cache %q body %s, want 200 miss with the raced fill", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
	if waited := time.Since(start); waited > 20*time.Second {
		t.Fatalf("reader waited %s: it missed the fill and ran into its wait", waited)
	}
}

func TestRememberedFailureIs502(t *testing.T) {
	f := newFixture(t)
	k := key(t, "acme", "2025-01-01", "2025-01-02")
	l, _ := f.store.Cache.Obtain(context.Background(), k, time.Minute)
	if err := l.RememberFailure(context.Background(), "the BI platform failed for this report (permanent, HTTP 400)", time.Minute); err != nil {
		t.Fatal(err)
	}
	resp, body := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-02")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "HTTP 400") {
		t.Fatalf("status %d body %s, want 502 with the failure's detail", resp.StatusCode, body)
	}
	if f.enqueued.Load() != 0 {
		t.Error("a remembered failure still enqueued a BI call")
	}
}

func TestRedisDownIs503(t *testing.T) {
	f := newFixture(t)
	f.mini.Close()
	start := time.Now()
	resp, body := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "unreachable") {
		t.Fatalf("status %d body %s, want 503 problem", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("503 took %s", d)
	}
	resp, _ = f.get(t, "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad input with Redis down: %d, want 400", resp.StatusCode)
	}
	r, err := f.client.Get(f.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down: %d, want 503", r.StatusCode)
	}
}

func TestOtherPathsAndMethods(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31", http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/nothing", http.StatusNotFound},
		{http.MethodGet, "/healthz", http.StatusOK},
		{http.MethodGet, "/readyz", http.StatusOK},
	} {
		req, _ := http.NewRequest(c.method, f.url+c.path, nil)
		resp, err := f.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
		if c.status >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, resp.Header.Get("Content-Type"))
		}
	}
}

func TestReadMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *api.Config) {
		c.Registerer = reg
		c.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	})
	fill(t, f.store, key(t, "acme", "2025-01-01", "2025-01-31"), `{}`)
	f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31")           // hit
	f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31")           // hit
	f.get(t, "customer=globex&from=2025-01-01&to=2025-01-31&wait=0s") // pending
	f.get(t, "customer=")                                             // error
	f.get(t, "customer=crowded&from=2025-01-01&to=2025-01-31")        // refused
	want := `
# HELP dashcache_reads_total Report reads, by result: hit, miss (waited for a fill), stale, stale_if_error (served stale from this process's memory because Redis is unreachable), pending (202), refused (429, or 503 while the breaker is open), canceled (the reader hung up), error.
# TYPE dashcache_reads_total counter
dashcache_reads_total{result="canceled"} 0
dashcache_reads_total{result="error"} 1
dashcache_reads_total{result="hit"} 2
dashcache_reads_total{result="miss"} 0
dashcache_reads_total{result="pending"} 1
dashcache_reads_total{result="refused"} 1
dashcache_reads_total{result="stale"} 0
dashcache_reads_total{result="stale_if_error"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "dashcache_reads_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "dashcache_fill_wait_seconds"); n != 1 {
		t.Errorf("fill wait histogram missing")
	}
	resp, body := f.do(t, http.MethodGet, "/metrics", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `dashcache_reads_total{result="hit"} 2`) {
		t.Errorf("/metrics: %d\n%.300s", resp.StatusCode, body)
	}
}

// TestLongWaitReassertsItsTask: a reader who joins a wait after the interval
// enqueues again (which may rescue a dead worker's task); one who joins
// sooner does not.
func TestLongWaitReassertsItsTask(t *testing.T) {
	for _, c := range []struct {
		every time.Duration
		want  int64
	}{{time.Hour, 1}, {0, 2}} {
		f := newFixture(t)
		api.SetReassertEvery(f.srv, c.every)
		k := key(t, "acme", "2025-01-01", "2025-01-31")
		q := "customer=acme&from=2025-01-01&to=2025-01-31&wait="
		done := make(chan int, 1)
		go func() {
			resp, _ := f.get(t, q+"20s")
			done <- resp.StatusCode
		}()
		wait.For(t, "the first reader to enqueue", 10*time.Second, func() bool { return f.enqueued.Load() >= 1 })
		// The second reader joins the first one's wait and, asking not to
		// wait, answers once it has enqueued again or not.
		if resp, _ := f.get(t, q+"0s"); resp.StatusCode != http.StatusAccepted {
			t.Errorf("second reader: status %d, want 202", resp.StatusCode)
		}
		fill(t, f.store, k, `{}`)
		if s := <-done; s != 200 {
			t.Errorf("status %d", s)
		}
		if n := f.enqueued.Load(); n != c.want {
			t.Errorf("reassert every %s: %d enqueues for two readers, want %d", c.every, n, c.want)
		}
	}
}

// TestNotificationWithoutFillKeepsWaiting: a notification is only a hint; one
// that finds nothing in the cache (another installation on the same Redis
// server: pub/sub spans databases) does not end the wait.
func TestNotificationWithoutFillKeepsWaiting(t *testing.T) {
	f := newFixture(t)
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	status := make(chan int, 1)
	go func() {
		resp, _ := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31&wait=20s")
		status <- resp.StatusCode
	}()
	waitReaders(t, f, k.String(), 1)
	other := redis.NewClient(&redis.Options{Addr: f.mini.Addr()})
	defer other.Close()
	other.Publish(context.Background(), store.FillChannel, k.String())
	// The woken reader finds nothing and starts another round, which
	// enqueues again.
	wait.For(t, "the reader to go on waiting (and enqueue again)", 10*time.Second, func() bool {
		select {
		case s := <-status:
			t.Fatalf("a notification without a fill ended the wait with %d", s)
		default:
		}
		return f.enqueued.Load() >= 2
	})
	fill(t, f.store, k, `{}`)
	if s := <-status; s != http.StatusOK {
		t.Fatalf("status %d after the real fill, want 200", s)
	}
}
