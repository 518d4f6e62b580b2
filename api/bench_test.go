package api_test

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// BenchmarkHit measures hits over HTTP on loopback, 50 keep-alive
// connections (wrk -t2 -c50 if installed: see generateLoad), for 3 s per
// variant at full speed and 3 s paced (see pause), each variant in the same
// run:
//
//   - bare: a net/http handler that does one Redis GET of the cached entry
//     and writes it, the baseline of a Redis cache;
//   - memory: a net/http handler that writes the same bytes from memory;
//   - memory-fasthttp: the same on fasthttp, the ceiling of the fast path;
//   - l1, redis: dashcache's hit path, served as the api role serves it
//     (internal/front: fasthttp for hits, net/http for the rest), with its
//     in-process L1, and without;
//   - l1-nethttp: with L1, all on net/http (what the front gains);
//   - l1-identity: with L1, for a client that does not accept gzip (the
//     stored report is decompressed for it);
//   - l1-nolog: with L1, without the access log (what the log costs);
//   - l1-month, l1-two-months: the default report partitioned by month
//     (DASHCACHE_PARTITION=month), a month's range (one partition), and a
//     31-day range assembled from two (held in L1 once assembled).
//
// The report is the simulator's for a month; clients accept gzip but for
// l1-identity. Each variant reports req/s, p99 latency, allocations and
// Redis commands per hit at full speed, and req/s and p99 paced (ns/op
// means nothing here). Set
// DASHCACHE_TEST_REDIS_URL for a real Redis (else miniredis, which measures
// little).
func BenchmarkHit(b *testing.B) {
	var rdb *redis.Client
	if os.Getenv(redistest.EnvURL) != "" {
		rdb = redistest.Client(b)
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: miniredis.RunT(b).Addr()})
		b.Cleanup(func() { rdb.Close() })
	}
	var commands atomic.Int64
	rdb.AddHook(countHook{&commands})
	st := store.New(rdb)
	k, _ := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", now)
	data, _ := provider.NewSimulator(provider.SimConfig{MaxLatency: -1}).Query(context.Background(), k)
	fill(b, st, k, string(data))
	revenue := k
	revenue.Report = "revenue"
	fill(b, st, revenue, string(data))
	february, _ := dashcache.ParseReportKey("acme", "2025-02-01", "2025-02-28", now)
	febData, _ := provider.NewSimulator(provider.SimConfig{MaxLatency: -1}).Query(context.Background(), february)
	fill(b, st, february, string(febData))
	redisKey := store.EntryKey(k)
	stored, err := rdb.Get(context.Background(), redisKey).Result()
	if err != nil {
		b.Fatal(err)
	}
	e, _ := store.ParseEntry(stored)

	newAPI := func(l1 int64, log zerolog.Logger, served dashcache.Served) *api.Server {
		return hitServer(b, st, api.Config{Log: log, Now: func() time.Time { return now }, L1Bytes: l1, ReadWithin: dashcache.DefaultReadWithin,
			Reports: served})
	}
	logged := zerolog.New(io.Discard).With().Timestamp().Logger()
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := rdb.Get(r.Context(), redisKey).Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, v)
	})
	memory := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, e.Body)
	})
	memoryFast := func(c *fasthttp.RequestCtx) bool {
		c.SetContentType("application/json")
		c.SetBodyString(e.Body)
		return true
	}
	withL1, withoutL1 := newAPI(api.DefaultL1Bytes, logged, dashcache.Served{}), newAPI(0, logged, dashcache.Served{})
	unlogged := newAPI(api.DefaultL1Bytes, zerolog.Nop(), dashcache.Served{})
	named := newAPI(api.DefaultL1Bytes, logged, dashcache.Served{Named: []string{"orders", "revenue"}})
	partitioned := newAPI(api.DefaultL1Bytes, logged, dashcache.Served{Partitions: map[string]*dashcache.Partition{"": dashcache.SimulatorPartition}})
	for _, c := range []struct {
		name string
		h    http.Handler
		fast func(*fasthttp.RequestCtx) bool // nil: net/http alone
		gzip bool
		path string // default hitPath
	}{
		{"bare", bare, nil, true, ""},
		{"memory", memory, nil, true, ""},
		{"memory-fasthttp", nil, memoryFast, true, ""},
		{"l1", withL1.Handler(), withL1.ServeFast, true, ""},
		{"l1-nethttp", withL1.Handler(), nil, true, ""},
		{"redis", withoutL1.Handler(), withoutL1.ServeFast, true, ""},
		{"l1-identity", withL1.Handler(), withL1.ServeFast, false, ""},
		{"l1-nolog", unlogged.Handler(), unlogged.ServeFast, true, ""},
		// A named report: its path and its own reads counter.
		{"l1-named", named.Handler(), named.ServeFast, true, "/v1/reports/revenue?customer=acme&from=2025-01-01&to=2025-01-31"},
		{"l1-month", partitioned.Handler(), partitioned.ServeFast, true, ""},
		{"l1-two-months", partitioned.Handler(), partitioned.ServeFast, true, "/v1/reports?customer=acme&from=2025-01-15&to=2025-02-14"},
	} {
		b.Run(c.name, func(b *testing.B) {
			addr := listen(b, c.h, c.fast)
			path := cmp.Or(c.path, hitPath)
			for b.Loop() {
				commands.Store(0)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				l, err := generateLoad(addr, path, c.gzip, 3*time.Second, 0)
				runtime.ReadMemStats(&after)
				cmds := commands.Load()
				if err != nil {
					b.Fatal(err)
				}
				paced, err := generateLoad(addr, path, c.gzip, 3*time.Second, pause)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(l.perSecond, "req/s")
				b.ReportMetric(float64(l.p99.Microseconds()), "p99-µs")
				b.ReportMetric(paced.perSecond, "paced-req/s")
				b.ReportMetric(float64(paced.p99.Microseconds()), "paced-p99-µs")
				b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(l.requests), "allocs/hit")
				b.ReportMetric(float64(cmds)/float64(l.requests), "redis-cmds/hit")
			}
		})
	}
}

// listen serves h on loopback, as the api role does: behind a front whose
// fast handler is fast, unless that is nil. It returns the address.
func listen(b *testing.B, h http.Handler, fast func(*fasthttp.RequestCtx) bool) string {
	if fast == nil {
		hs := httptest.NewServer(h)
		b.Cleanup(hs.Close)
		return hs.Listener.Addr().String()
	}
	return serveFront(b, fast, h)
}

// load is what a load generator measured.
type load struct {
	requests  int
	perSecond float64
	p99       time.Duration
}

const hitPath = "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31"

// pause is what each connection waits between its requests in the paced
// measurement: 50 connections then ask about 9,000 hits a second, which
// every variant but l1-identity serves, so its p99 compares the variants'
// latency at one load; at full speed (no pause) the fastest variants make
// the load generator, sharing the cores, the bottleneck, and its own
// waits for a core make their p99.
const pause = 5 * time.Millisecond

// generateLoad sends hits of path to addr over 50 keep-alive connections for d, each
// waiting pause between its requests, with wrk -t2 -c50 when it is installed
// (as the figures in the issue were taken; its allocations are not counted
// with the server's), else with a minimal client of its own, which takes a
// larger part of the machine.
func generateLoad(addr, path string, gzip bool, d, pause time.Duration) (load, error) {
	if wrk, err := exec.LookPath("wrk"); err == nil {
		args := []string{"-t2", "-c50", "-d" + d.String(), "--latency", "-H", "Host: localhost"}
		if gzip {
			args = append(args, "-H", "Accept-Encoding: gzip")
		}
		if pause > 0 {
			script := filepath.Join(os.TempDir(), fmt.Sprintf("dashcache-pause-%d.lua", pause.Milliseconds()))
			if err := os.WriteFile(script, fmt.Appendf(nil, "function delay() return %d end\n", pause.Milliseconds()), 0o644); err != nil {
				return load{}, err
			}
			args = append(args, "-s", script)
		}
		out, err := exec.Command(wrk, append(args, "http://"+addr+path)...).CombinedOutput()
		if err != nil {
			return load{}, fmt.Errorf("wrk: %v\n%s", err, out)
		}
		return parseWrk(string(out))
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n"
	if gzip {
		req += "Accept-Encoding: gzip\r\n"
	}
	req += "\r\n"
	var mu sync.Mutex
	var latencies []time.Duration
	var firstErr error
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			var mine []time.Duration
			err := func() error {
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer conn.Close()
				r := bufio.NewReaderSize(conn, 32<<10)
				for time.Now().Before(deadline) {
					time.Sleep(pause)
					t0 := time.Now()
					if _, err := io.WriteString(conn, req); err != nil {
						return err
					}
					if err := readResponse(r); err != nil {
						return err
					}
					mine = append(mine, time.Since(t0))
				}
				return nil
			}()
			mu.Lock()
			defer mu.Unlock()
			latencies = append(latencies, mine...)
			if firstErr == nil {
				firstErr = err
			}
		})
	}
	wg.Wait()
	if firstErr != nil || len(latencies) == 0 {
		return load{}, fmt.Errorf("load: %d requests, %v", len(latencies), firstErr)
	}
	slices.Sort(latencies)
	return load{len(latencies), float64(len(latencies)) / d.Seconds(), latencies[len(latencies)*99/100]}, nil
}

// parseWrk reads the requests, their rate and the 99th percentile latency
// from wrk's --latency report.
func parseWrk(out string) (load, error) {
	var l load
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "Requests/sec:":
			l.perSecond, _ = strconv.ParseFloat(f[1], 64)
		case len(f) >= 2 && f[0] == "99%":
			l.p99, _ = time.ParseDuration(strings.Replace(f[1], "us", "µs", 1))
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			l.requests, _ = strconv.Atoi(f[0])
		case strings.Contains(line, "Non-2xx"):
			return l, fmt.Errorf("wrk saw errors:\n%s", out)
		}
	}
	if l.requests == 0 || l.perSecond == 0 {
		return l, fmt.Errorf("cannot read wrk's report:\n%s", out)
	}
	return l, nil
}

// readResponse reads one HTTP/1.1 response of 200 with a Content-Length.
func readResponse(r *bufio.Reader) error {
	status, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		return fmt.Errorf("status %q", status)
	}
	length := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if name, value, ok := strings.Cut(string(line), ":"); ok && strings.EqualFold(name, "Content-Length") {
			length, _ = strconv.Atoi(strings.TrimSpace(value))
		}
	}
	if length < 0 {
		return fmt.Errorf("no Content-Length")
	}
	_, err = r.Discard(length)
	return err
}

// countHook counts the commands a Redis client sends.
type countHook struct{ n *atomic.Int64 }

func (countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// hitServer starts an API server of cfg whose queue is hitsOnly, stopped
// when the benchmark ends, and returns its handler.
func hitServer(b *testing.B, st store.Store, cfg api.Config) *api.Server {
	cfg.Queue = hitsOnly{b}
	withStore(b, &cfg, st)
	srv, err := api.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	return srv
}

// hitsOnly is the queue of a benchmark that serves only hits: nothing may be
// enqueued but an early refresh.
type hitsOnly struct{ b *testing.B }

func (q hitsOnly) Ensure(context.Context, dashcache.ReportKey) (bool, error) {
	q.b.Error("a hit enqueued a fill")
	return false, nil
}

func (hitsOnly) Warm(context.Context, dashcache.ReportKey, dashcache.Refresh) (bool, error) {
	return false, nil
}

func (q hitsOnly) Invalidate(context.Context, dashcache.Changed, time.Duration) (dashcache.Invalidation, error) {
	q.b.Error("a hit invalidated")
	return dashcache.Invalidation{}, nil
}

// BenchmarkReadTracking measures what recording reads (for invalidations'
// refreshes) costs a hit: in process, without the network, so that the
// cost is not hidden in it. In each round the same hits of 100 reports,
// from L1, go through a server that does not track reads and one that does,
// in turns; it reports both ns per hit and the difference in percent.
func BenchmarkReadTracking(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(b).Addr()})
	b.Cleanup(func() { rdb.Close() })
	st := store.New(rdb)
	var queries []string
	for i := range 100 {
		from := dashcache.CivilDay(2024, 1, 1+i)
		k := dashcache.ReportKey{Customer: fmt.Sprintf("c%d", i%10), From: from, To: from + 30}
		fill(b, st, k, `{"revenue":12345,"orders":678}`)
		queries = append(queries, fmt.Sprintf("/v1/reports?customer=%s&from=%s&to=%s", k.Customer, k.From, k.To))
	}
	logged := zerolog.New(io.Discard).With().Timestamp().Logger()
	// A clock that runs, from the time the reports were filled at: each
	// report's read is recorded in full once a second.
	start := time.Now()
	clock := func() time.Time { return now.Add(time.Since(start)) }
	server := func(within time.Duration) http.Handler {
		return hitServer(b, st, api.Config{Log: logged, Now: clock, L1Bytes: api.DefaultL1Bytes, ReadWithin: within}).Handler()
	}
	untracked, tracked := server(0), server(dashcache.DefaultReadWithin)
	const perRound = 20000
	workers := runtime.GOMAXPROCS(0)
	run := func(h http.Handler) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				rw := &recorder{header: http.Header{}}
				reqs := make([]*http.Request, len(queries))
				for i, q := range queries {
					reqs[i] = httptest.NewRequest(http.MethodGet, q, nil)
					reqs[i].Header.Set("Accept-Encoding", "gzip")
					reqs[i].Host, reqs[i].RemoteAddr = "localhost", "127.0.0.1:40000"
				}
				for i := w; i < perRound; i += workers {
					clear(rw.header)
					rw.status = 0
					h.ServeHTTP(rw, reqs[i%len(reqs)])
					if rw.status != http.StatusOK && rw.status != 0 {
						b.Errorf("status %d", rw.status)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	run(untracked) // fills both L1s
	run(tracked)
	var without, with time.Duration
	round := 0
	for b.Loop() {
		if round%2 == 0 {
			without += run(untracked)
			with += run(tracked)
		} else {
			with += run(tracked)
			without += run(untracked)
		}
		round++
	}
	hits := float64(round * perRound)
	b.ReportMetric(float64(without.Nanoseconds())/hits, "untracked-ns/hit")
	b.ReportMetric(float64(with.Nanoseconds())/hits, "tracked-ns/hit")
	b.ReportMetric((float64(with)/float64(without)-1)*100, "cost-%")
}
