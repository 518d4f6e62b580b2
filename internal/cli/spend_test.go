package cli

import (
	"cmp"
	"context"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
)

// biServer is the BI platform of the end-to-end tests: the simulator behind
// an HTTP server that counts, as the platform's billing would, the queries it
// gets, and how many of each customer's are in flight at once. Its answers
// can be switched to a failure.
type biServer struct {
	*httptest.Server
	calls atomic.Int64
	// answer, when set, answers a query instead of the simulator.
	answer atomic.Pointer[func(w http.ResponseWriter)]
	// firstCall is closed by the first query of the customer named first.
	first     string
	firstCall chan struct{}

	mu          sync.Mutex
	inFlight    map[string]int
	maxInFlight map[string]int
	callsOf     map[string]int
}

// waitFirstCall returns once the BI server has had its first query (of the
// customer named first), or fails the test after 20 s.
func (b *biServer) waitFirstCall(t testing.TB) {
	t.Helper()
	select {
	case <-b.firstCall:
	case <-time.After(20 * time.Second):
		t.Fatal("no query reached the BI server")
	}
}

func newBIServer(t testing.TB, latency time.Duration, first string) *biServer {
	b := &biServer{first: first, firstCall: make(chan struct{}),
		inFlight: map[string]int{}, maxInFlight: map[string]int{}, callsOf: map[string]int{}}
	sim := provider.NewSimulator(provider.SimConfig{MinLatency: latency, MaxLatency: cmp.Or(latency, -1)}) // 0: at once
	var once sync.Once
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/query" {
			sim.Handler().ServeHTTP(w, r)
			return
		}
		b.calls.Add(1)
		customer, _, _ := strings.Cut(r.Header.Get("Idempotency-Key"), "|")
		b.mu.Lock()
		b.inFlight[customer]++
		b.callsOf[customer]++
		b.maxInFlight[customer] = max(b.maxInFlight[customer], b.inFlight[customer])
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			b.inFlight[customer]--
			b.mu.Unlock()
		}()
		if customer == b.first {
			once.Do(func() { close(b.firstCall) })
		}
		if answer := b.answer.Load(); answer != nil {
			io.Copy(io.Discard, r.Body)
			(*answer)(w)
			return
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(b.Close)
	return b
}

// answerWith makes every later query get answer instead of a report; nil
// brings the reports back.
func (b *biServer) answerWith(answer func(w http.ResponseWriter)) {
	if answer == nil {
		b.answer.Store(nil)
		return
	}
	b.answer.Store(&answer)
}

func (b *biServer) figures(customer string) (calls, maxInFlight int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.callsOf[customer], b.maxInFlight[customer]
}

// read is one GET /v1/reports and what came of it.
type read struct {
	status             int
	retryAfter, xcache string
	body               string
	latency            time.Duration
}

var readClient = &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 400}}

func get(t testing.TB, addr, customer, from, to, wait string) read {
	return getPath(t, addr, "/v1/reports", customer, from, to, wait)
}

// getPath reads the report at path (/v1/reports, or a named report's).
func getPath(t testing.TB, addr, path, customer, from, to, wait string) read {
	start := time.Now()
	resp, err := readClient.Get(fmt.Sprintf("http://%s%s?customer=%s&from=%s&to=%s&wait=%s", addr, path, customer, from, to, wait))
	if err != nil {
		t.Errorf("reading %s %s..%s: %v", customer, from, to, err)
		return read{}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return read{resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("X-Cache"), string(body), time.Since(start)}
}

// day returns the date n days after 2024-01-01.
func day(n int) string {
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, n).Format(dashcache.DateLayout)
}

// noisyFigures is what the noisy-neighbour scenario measured.
type noisyFigures struct {
	quiet                []read // the quiet customers' reads
	noisy                []read
	noisyMaxInFlight     int // at the BI server
	noisyCalls, allCalls int
}

// noisyNeighbour runs the noisy-neighbour scenario with env's settings on top
// of its own: a BI platform answering in 1 s, a fleet rate of 20/s, 2 workers
// and an API server. Customer "noisy" fires 300 misses of distinct ranges at
// once; as soon as its first query reaches the BI server, 5 quiet customers
// read 2 reports each.
func noisyNeighbour(t testing.TB, env map[string]string) noisyFigures {
	redisURL := redistest.URL(t)
	bi := newBIServer(t, time.Second, "noisy")
	base := map[string]string{
		"DASHCACHE_REDIS_URL":     redisURL,
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "20",
	}
	for k, v := range env {
		base[k] = v
	}
	for range 2 {
		startRole(t, "worker", base)
	}
	api := startRole(t, "api", base)

	var f noisyFigures
	f.noisy = make([]read, 300)
	var wg sync.WaitGroup
	for i := range f.noisy {
		wg.Go(func() { f.noisy[i] = get(t, api, "noisy", day(i), day(i), "10s") })
	}
	bi.waitFirstCall(t)
	f.quiet = make([]read, 10)
	for i := range f.quiet {
		wg.Go(func() {
			from, to := "2025-01-01", "2025-01-31"
			if i%2 == 1 {
				from, to = "2025-02-01", "2025-02-28"
			}
			f.quiet[i] = get(t, api, fmt.Sprintf("quiet%d", i/2), from, to, "10s")
		})
	}
	wg.Wait()
	f.noisyCalls, f.noisyMaxInFlight = bi.figures("noisy")
	f.allCalls = int(bi.calls.Load())
	return f
}

// TestNoisyNeighbour: one customer firing 300 distinct misses at once takes
// neither the BI platform nor the workers from the others: every quiet read
// is served within 3 s, the noisy customer never has more than its share (10
// at a fleet rate of 20) in flight at the BI server, and its refused reads
// got 429 with Retry-After.
func TestNoisyNeighbour(t *testing.T) {
	f := noisyNeighbour(t, nil)
	for i, r := range f.quiet {
		if r.status != http.StatusOK || r.latency > 3*time.Second {
			t.Errorf("quiet read %d: %d after %s, want 200 within 3 s: %.200s", i, r.status, r.latency, r.body)
		}
	}
	if f.noisyMaxInFlight > 10 {
		t.Errorf("the noisy customer had %d queries in flight at the BI server, want at most 10", f.noisyMaxInFlight)
	}
	refused, served := 0, 0
	for _, r := range f.noisy {
		switch r.status {
		case http.StatusTooManyRequests:
			refused++
			if r.retryAfter == "" || !strings.Contains(r.body, "DASHCACHE_CUSTOMER_PENDING") {
				t.Errorf("a refused read lacks Retry-After or a detail: %q %s", r.retryAfter, r.body)
			}
		case http.StatusOK:
			served++
		}
	}
	if refused != 300-20 || served != 20 || f.noisyCalls != 20 {
		t.Errorf("noisy: %d refused, %d served, %d BI calls; want 280, 20 (DASHCACHE_CUSTOMER_PENDING) and 20", refused, served, f.noisyCalls)
	}
	t.Logf("quiet reads: %s; noisy: at most %d in flight, %d refused, %d BI calls", latencies(f.quiet), f.noisyMaxInFlight, refused, f.noisyCalls)
}

// BenchmarkNoisyNeighbour prints the noisy-neighbour figures with the
// per-customer share and admission (the defaults) and without them (both so
// high that they never bite), in one run. Run it with make bench-fairness.
func BenchmarkNoisyNeighbour(b *testing.B) {
	for _, c := range []struct {
		name string
		env  map[string]string
	}{
		{"share=on", nil},
		{"share=off", map[string]string{"DASHCACHE_CUSTOMER_CONCURRENCY": "1000", "DASHCACHE_CUSTOMER_PENDING": "1000"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				f := noisyNeighbour(b, c.env)
				var lat []time.Duration
				served := 0
				for _, r := range f.quiet {
					lat = append(lat, r.latency)
					if r.status == http.StatusOK {
						served++
					}
				}
				slices.Sort(lat)
				b.ReportMetric(float64(served), "quiet-served/10")
				b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "quiet-p50-ms")
				b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "quiet-max-ms")
				b.ReportMetric(float64(f.noisyMaxInFlight), "noisy-max-in-flight")
				b.ReportMetric(float64(f.noisyCalls), "noisy-BI-calls")
				b.ReportMetric(float64(f.allCalls), "BI-calls")
			}
		})
	}
}

func latencies(reads []read) string {
	var lat []time.Duration
	for _, r := range reads {
		lat = append(lat, r.latency.Round(time.Millisecond))
	}
	slices.Sort(lat)
	return fmt.Sprintf("p50 %s, max %s", lat[len(lat)/2], lat[len(lat)-1])
}

// TestWarmingUnderFlood: a warm of 40 reports completes while an interactive
// flood from six customers keeps every worker and the fleet's rate busy, and
// the flood goes on while it does.
func TestWarmingUnderFlood(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	bi := newBIServer(t, 100*time.Millisecond, "")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     redisURL,
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "50",
	}
	for range 2 {
		startRole(t, "worker", env)
	}
	api := startRole(t, "api", env)
	warmed := make(chan string, 100)
	sub, err := store.New(rdb).Cache.Subscribe(context.Background(), store.Listener{Filled: func(canonical string, _ trace.SpanContext) {
		if strings.HasPrefix(canonical, "warmed") {
			warmed <- canonical
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	go sub.Run(t.Context())

	// The flood: each customer keeps asking for new ranges without waiting.
	stop := make(chan struct{})
	var flood sync.WaitGroup
	for c := range 6 {
		flood.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if r := get(t, api, fmt.Sprintf("flood%d", c), day(i), day(i), "0s"); r.status == http.StatusTooManyRequests {
					time.Sleep(50 * time.Millisecond)
				}
			}
		})
	}
	defer func() { close(stop); flood.Wait() }()
	wait.For(t, "the flood to get going (100 BI calls)", 20*time.Second, func() bool { return bi.calls.Load() >= 100 })

	var customers []string
	for i := range 40 {
		customers = append(customers, fmt.Sprintf("warmed%d", i))
	}
	start, floodBefore := time.Now(), bi.calls.Load()
	err = Run(t.Context(), []string{"warm", "--customers", strings.Join(customers, ","), "--from", "2025-01-01", "--to", "2025-01-31"},
		func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < len(customers) {
		select {
		case k := <-warmed:
			got[k] = true
		case <-time.After(60 * time.Second):
			t.Fatalf("%d of %d warmed reports filled in a minute under the flood", len(got), len(customers))
		}
	}
	flooded := bi.calls.Load() - floodBefore - int64(len(customers))
	t.Logf("40 warmed reports filled in %s, while the flood made %d BI calls", time.Since(start).Round(time.Millisecond), flooded)
	if flooded < 40 {
		t.Errorf("the flood made only %d BI calls while the warm ran: it was no flood", flooded)
	}
}

// TestBreaker: with the BI platform answering only 500s, the fleet stops
// calling it once the breaker opens (the BI server's count stays flat through
// the cool-down), readers of uncached reports get 503 in under 1 s, and the
// first read after the platform recovers is served.
func TestBreaker(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	bi := newBIServer(t, 0, "")
	bi.answerWith(func(w http.ResponseWriter) { http.Error(w, "down", http.StatusInternalServerError) })
	const cooldown = 3 * time.Second
	env := map[string]string{
		"DASHCACHE_REDIS_URL":        redisURL,
		"DASHCACHE_LISTEN":           "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":     bi.URL,
		"DASHCACHE_BREAKER_COOLDOWN": cooldown.String(),
	}
	startRole(t, "worker", env)
	api := startRole(t, "api", env)
	begin := time.Now()
	for _, c := range []string{"a", "b", "c"} {
		get(t, api, c, "2025-01-01", "2025-01-31", "0s")
	}
	// The tasks fail and retry until the breaker opens; a reader then gets 503.
	var refused read
	if !wait.Until(30*time.Second, func() bool {
		refused = get(t, api, "d", "2025-01-01", "2025-01-31", "0s")
		return refused.status == http.StatusServiceUnavailable
	}) {
		t.Fatalf("the breaker never opened: %d calls at the BI server, last read %d", bi.calls.Load(), refused.status)
	}
	// Calls let through just before the breaker opened may still be on
	// their way to the BI server: let them land before counting.
	time.Sleep(250 * time.Millisecond)
	calls := bi.calls.Load()
	left, err := store.New(rdb).Guards.BreakerOpen(context.Background(), "")
	if err != nil || left <= 0 {
		t.Fatalf("BreakerOpen = %s, %v while readers are refused", left, err)
	}
	reopens := time.Now().Add(left)
	t.Logf("opened after %d BI calls, %s in", calls, time.Since(begin).Round(time.Millisecond))
	if calls < 5 {
		t.Errorf("opened after %d calls, want at least the threshold of 5", calls)
	}
	if r := get(t, api, "e", "2025-01-01", "2025-01-31", "10s"); r.status != http.StatusServiceUnavailable ||
		r.latency >= time.Second || r.retryAfter == "" || !strings.Contains(r.body, "stopped calling") {
		t.Errorf("a reader while open: %d after %s, Retry-After %q: %s; want 503 in under 1 s, with Retry-After and a detail",
			r.status, r.latency, r.retryAfter, r.body)
	}
	// Nothing is called until the cool-down ends: watched, failing at the
	// first call, through all of it but the last 300 ms (some seconds, for
	// tasks that retry within one or two).
	wait.Never(t, "a BI call during the cool-down", time.Until(reopens.Add(-300*time.Millisecond)), func() bool { return bi.calls.Load() != calls })
	bi.answerWith(nil) // the platform is back
	time.Sleep(time.Until(reopens))
	r := get(t, api, "e", "2025-01-01", "2025-01-31", "10s")
	if r.status != http.StatusOK {
		t.Errorf("the first read after the platform recovered: %d %s", r.status, r.body)
	}
	t.Logf("the first read after the cool-down took %s", r.latency.Round(time.Millisecond))
}

// TestBadBodyCostsTwoCalls: a report whose answer is invalid JSON costs 2 BI
// calls, then is remembered as failed (502) for the failure period without
// another call.
func TestBadBodyCostsTwoCalls(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	bi := newBIServer(t, 0, "")
	bi.answerWith(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"revenue": 12,`)
	})
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redisURL,
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	startRole(t, "worker", env)
	api := startRole(t, "api", env)
	for i := range 5 {
		r := get(t, api, "acme", "2025-01-01", "2025-01-31", "10s")
		if r.status != http.StatusBadGateway || !strings.Contains(r.body, "invalid") {
			t.Errorf("read %d: %d %s, want 502 naming the invalid answer", i, r.status, r.body)
		}
	}
	// No third call: a fill the later reads asked for was enqueued before
	// they were answered; once the queues are idle it has run, and its BI
	// call is counted.
	waitIdle(t, rdb)
	if n := bi.calls.Load(); n != 2 {
		t.Errorf("%d BI calls for a report whose answer is invalid JSON, want 2", n)
	}
}
