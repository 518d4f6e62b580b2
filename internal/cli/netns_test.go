//go:build linux

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/netnstest"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// hostProcess is a dashcache process in a network namespace, with its log.
type hostProcess struct {
	mu    sync.Mutex
	lines []string
}

// logged returns the log lines that contain every one of words.
func (p *hostProcess) logged(words ...string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.lines {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			out = append(out, l)
		}
	}
	return out
}

// startOn runs the dashcache binary as role in the host's namespace with
// exactly env (and PATH), killed when the test ends.
func startOn(t *testing.T, h *netnstest.Host, role string, env map[string]string) *hostProcess {
	t.Helper()
	cmd := h.Command(binary(t), role)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DASHCACHE_DRAIN=0s"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := new(hostProcess)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-read
		cmd.Wait()
	})
	return p
}

// runOn runs the program at path with args in the host's namespace,
// killed when the test ends.
func runOn(t *testing.T, h *netnstest.Host, path string, args ...string) {
	t.Helper()
	cmd := h.Command(path, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

// partitionBI is a BI platform in its own namespace that counts the calls
// of each customer and who made them. The calls of customer holdCustomer
// wait to be answered (answer).
type partitionBI struct {
	URL string
	// arrivals are the calls as they reach it, for next: the first 1000
	// that nobody has taken (the calls counted are all of them).
	arrivals chan biArrival

	mu    sync.Mutex
	calls map[string]int
	holds map[int]chan struct{} // the calls of holdCustomer, by number
}

// biArrival is a call as it reaches the BI platform.
type biArrival struct {
	customer, from string // from: the caller's IP
	n              int    // the customer's calls so far, this one included
}

const holdCustomer = "cut"

func startPartitionBI(t *testing.T, h *netnstest.Host) *partitionBI {
	ln, err := h.Listen("tcp", h.IP+":8081")
	if err != nil {
		t.Fatal(err)
	}
	bi := &partitionBI{URL: "http://" + h.IP + ":8081", arrivals: make(chan biArrival, 1000), calls: map[string]int{}, holds: map[int]chan struct{}{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		customer, _, _ := strings.Cut(r.Header.Get("Idempotency-Key"), "|")
		from, _, _ := net.SplitHostPort(r.RemoteAddr)
		bi.mu.Lock()
		bi.calls[customer]++
		n := bi.calls[customer]
		bi.mu.Unlock()
		select {
		case bi.arrivals <- biArrival{customer, from, n}:
		default:
		}
		if customer == holdCustomer {
			select {
			case <-bi.hold(n):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"call":%d,"by":%q}`, n, from)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // before Close, which waits for the calls
		bi.mu.Lock()
		defer bi.mu.Unlock()
		for n, c := range bi.holds {
			select {
			case <-c:
			default:
				close(c)
			}
			delete(bi.holds, n)
		}
	})
	return bi
}

// hold returns what call n of holdCustomer waits for.
func (bi *partitionBI) hold(n int) chan struct{} {
	bi.mu.Lock()
	defer bi.mu.Unlock()
	if bi.holds[n] == nil {
		bi.holds[n] = make(chan struct{})
	}
	return bi.holds[n]
}

// answer answers call n of holdCustomer.
func (bi *partitionBI) answer(n int) { close(bi.hold(n)) }

// callsOf returns the BI calls of a customer so far.
func (bi *partitionBI) callsOf(customer string) int {
	bi.mu.Lock()
	defer bi.mu.Unlock()
	return bi.calls[customer]
}

// allCalls returns the BI calls so far, of every customer.
func (bi *partitionBI) allCalls() int64 {
	bi.mu.Lock()
	defer bi.mu.Unlock()
	var n int64
	for _, c := range bi.calls {
		n += int64(c)
	}
	return n
}

// next returns the next call of customer to reach the BI platform, or fails
// the test after timeout.
func (bi *partitionBI) next(t *testing.T, customer string, timeout time.Duration) biArrival {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case a := <-bi.arrivals:
			if a.customer == customer {
				return a
			}
		case <-deadline:
			t.Fatalf("no BI call of %s within %s", customer, timeout)
		}
	}
}

// nsRead is one answer read through a namespace.
type nsRead struct {
	status         int
	xcache, reason string
	etag, body     string
	took           time.Duration
	err            error
}

func readVia(c *http.Client, customer, wait string) nsRead {
	start := time.Now()
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:8080/v1/reports?customer=%s&from=2025-01-01&to=2025-01-31&wait=%s", customer, wait))
	r := nsRead{err: err}
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r = nsRead{resp.StatusCode, resp.Header.Get("X-Cache"), resp.Header.Get("X-Cache-Reason"), resp.Header.Get("Etag"), string(b), 0, nil}
	}
	r.took = time.Since(start)
	return r
}

// redisOn runs redis-server (at path, with args on top) on port 6379 of the
// host, without persistence and announcing the host's address to its
// primary, and returns a client of it once it answers.
func redisOn(t *testing.T, h *netnstest.Host, path string, args ...string) *redis.Client {
	t.Helper()
	runOn(t, h, path, append([]string{"--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--replica-announce-ip", h.IP}, args...)...)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", Dialer: h.Dial})
	t.Cleanup(func() { rdb.Close() })
	wait.For(t, "Redis on "+h.Name+" to answer", 10*time.Second, func() bool { return rdb.Ping(t.Context()).Err() == nil })
	return rdb
}

// ready reports whether the dashcache process that c reaches on
// 127.0.0.1:8080 answers /readyz with 200.
func ready(c *http.Client) bool {
	resp, err := c.Get("http://127.0.0.1:8080/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// awaitReady waits for the dashcache process of each host to be ready.
func awaitReady(t *testing.T, hosts ...*netnstest.Host) {
	t.Helper()
	for _, h := range hosts {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.Dial}}
		wait.For(t, h.Name+" to be ready", 20*time.Second, func() bool { return ready(c) })
	}
}

// TestPartitions runs a fleet across hosts, each in a network namespace of
// its own on one bridge: Redis, the BI platform, two workers and an API
// process; the test cuts one host's link at a time and restores it.
func TestPartitions(t *testing.T) {
	n := netnstest.New(t)
	redisServer := redistest.Program(t, "redis-server")
	redisHost, biHost, apiHost := n.Host("redis"), n.Host("bi"), n.Host("api")
	workers := []*netnstest.Host{n.Host("w1"), n.Host("w2")}

	rdb := redisOn(t, redisHost, redisServer)

	bi := startPartitionBI(t, biHost)
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     "redis://" + redisHost.IP + ":6379/0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "100",
		"DASHCACHE_LISTEN":        "127.0.0.1:8080", // each host's own loopback
	}
	procs := map[*netnstest.Host]*hostProcess{}
	for _, w := range workers {
		procs[w] = startOn(t, w, "worker", env)
	}
	startOn(t, apiHost, "api", env)
	api := &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{DialContext: apiHost.Dial}}
	awaitReady(t, append([]*netnstest.Host{apiHost}, workers...)...)

	t.Run("worker cut off mid-call", func(t *testing.T) {
		const readers = 3
		answers := make(chan nsRead, readers)
		for range readers {
			go func() { answers <- readVia(api, holdCustomer, "30s") }()
		}
		first := bi.next(t, holdCustomer, 20*time.Second)
		var cut, other *netnstest.Host
		for _, w := range workers {
			if w.IP == first.from {
				cut = w
			} else {
				other = w
			}
		}
		if cut == nil {
			t.Fatalf("the first BI call came from %s, no worker's address", first.from)
		}
		cut.Cut()
		cutAt := time.Now()
		t.Cleanup(cut.Restore) // restoring twice is harmless
		second := bi.next(t, holdCustomer, 40*time.Second)
		took := time.Since(cutAt)
		if second.from != other.IP {
			t.Fatalf("the second BI call came from %s, want the other worker %s", second.from, other.IP)
		}

		// The other worker holds the lock now (its BI call waits). The cut
		// worker's link comes back and its BI call answers: its late
		// answer must not be written.
		cut.Restore()
		bi.answer(1)
		var outcome string
		wait.For(t, "the cut worker to end its task", 30*time.Second, func() bool {
			for _, l := range procs[cut].logged(holdCustomer) {
				var line struct{ Message, Error string }
				if json.Unmarshal([]byte(l), &line) == nil && (line.Message == "task failed" || line.Message == "BI call failed; will retry") {
					outcome = line.Message + ": " + line.Error
					return true
				}
			}
			return false
		})
		if filled := procs[cut].logged(holdCustomer, "report filled"); len(filled) > 0 {
			t.Errorf("the cut worker filled the report: %s", filled[0])
		}
		bi.answer(2)
		var body string
		for range readers {
			r := <-answers
			if r.status != http.StatusOK || !strings.Contains(r.body, `"call":2`) {
				t.Fatalf("a reader got %d %v %.200s, want the second worker's report", r.status, r.err, r.body)
			}
			body = r.body
		}
		answered := time.Since(cutAt)
		k, _ := dashcache.ParseReportKey(holdCustomer, "2025-01-01", "2025-01-31", time.Now())
		raw, err := store.New(rdb).Cache.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		e, err := store.ParseEntry(raw)
		if err != nil || !strings.Contains(string(e.Body), `"call":2`) {
			t.Fatalf("Redis holds %.200q (%v), want the second worker's report", raw, err)
		}
		if r := readVia(api, holdCustomer, "0s"); r.status != http.StatusOK || r.body != body {
			t.Errorf("a read after the cut worker came back: %d %.200s, want the report the readers got", r.status, r.body)
		}
		if n := bi.callsOf(holdCustomer); n != 2 {
			t.Errorf("%d BI calls for the report, want 2: the cut worker's and the other's", n)
		}
		t.Logf("worker cut off mid-call: the other worker's BI call came %s after the cut (the lock's 15 s, then the rescue); "+
			"the cut worker, back with its answer, wrote nothing (%s); %d readers answered with the other's report %s after the cut; %d BI calls, one written",
			took.Round(time.Millisecond), outcome, readers, answered.Round(time.Millisecond), bi.callsOf(holdCustomer))
	})

	t.Run("API cut off", func(t *testing.T) {
		const hot = 5
		for i := range hot {
			wait.For(t, "a hot report to be a hit", 20*time.Second, func() bool {
				r := readVia(api, fmt.Sprintf("hot%d", i), "10s")
				return r.status == http.StatusOK && r.xcache == "hit"
			})
		}
		old := readVia(api, "hot0", "0s").etag

		// A steady load on the hot reports, through the cut and back.
		stop := make(chan struct{})
		var loadReads, loadRefused atomic.Int64
		var lg sync.WaitGroup
		for g := range 4 {
			lg.Go(func() {
				for i := g; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					r := readVia(api, fmt.Sprintf("hot%d", 1+i%(hot-1)), "10s")
					loadReads.Add(1)
					if r.status != http.StatusOK {
						loadRefused.Add(1)
					}
				}
			})
		}

		apiHost.Cut()
		cutAt := time.Now()
		t.Cleanup(apiHost.Restore)
		wait.For(t, "a hot report to be served stale", 20*time.Second, func() bool {
			return readVia(api, "hot0", "10s").reason == "redis-unavailable"
		})
		staleAfter := time.Since(cutAt)
		for i := range hot {
			if r := readVia(api, fmt.Sprintf("hot%d", i), "10s"); r.status != http.StatusOK || r.xcache != "stale" || r.reason != "redis-unavailable" {
				t.Errorf("hot%d, the API cut off: %d %q %q %v", i, r.status, r.xcache, r.reason, r.err)
			}
		}
		miss := readVia(api, "cold", "10s")
		if miss.status != http.StatusServiceUnavailable || miss.took > time.Second {
			t.Errorf("a miss, the API cut off: %d after %s, want a fast 503", miss.status, miss.took)
		}
		if ready(api) {
			t.Error("/readyz answers 200 while the API is cut off from Redis")
		}

		// A worker refreshes hot0 meanwhile: the API cannot hear of it.
		calls := bi.callsOf("hot0")
		warm := workers[0].Command(binary(t), "warm", "--customers", "hot0", "--from", "2025-01-01", "--to", "2025-01-31", "--force")
		warm.Env = []string{"PATH=" + os.Getenv("PATH"), "DASHCACHE_REDIS_URL=" + env["DASHCACHE_REDIS_URL"]}
		if out, err := warm.CombinedOutput(); err != nil {
			t.Fatalf("warm: %v\n%s", err, out)
		}
		k, _ := dashcache.ParseReportKey("hot0", "2025-01-01", "2025-01-31", time.Now())
		wait.For(t, "the refresh to land", 20*time.Second, func() bool {
			raw, _ := store.New(rdb).Cache.Get(context.Background(), k)
			e, err := store.ParseEntry(raw)
			return err == nil && e.ETag != old && bi.callsOf("hot0") > calls
		})
		if r := readVia(api, "hot0", "10s"); r.etag != old || r.xcache != "stale" {
			t.Errorf("hot0 while the API is still cut off: X-Cache %q, ETag %s, want the old one, stale", r.xcache, r.etag)
		}

		restoredAt := time.Now()
		apiHost.Restore()
		var seen []nsRead
		wait.For(t, "a fresh answer", 30*time.Second, func() bool {
			r := readVia(api, "hot0", "10s")
			seen = append(seen, r)
			return r.status == http.StatusOK && r.reason == ""
		})
		freshAfter := time.Since(restoredAt)
		for range 20 {
			seen = append(seen, readVia(api, "hot0", "10s"))
		}
		for _, r := range seen {
			if r.xcache == "hit" && r.etag == old {
				t.Fatalf("the report refreshed while the API was cut off was served as a hit with its old ETag after the link came back")
			}
		}
		if last := seen[len(seen)-1]; last.xcache != "hit" || last.etag == old {
			t.Errorf("hot0 once back: X-Cache %q, ETag %s (old %s), want a hit of the refresh", last.xcache, last.etag, old)
		}
		wait.For(t, "/readyz to answer 200 again", 10*time.Second, func() bool { return ready(api) })
		close(stop)
		lg.Wait()
		if n := loadRefused.Load(); n > 0 {
			t.Errorf("%d of %d reads of hot reports refused", n, loadReads.Load())
		}
		t.Logf("API cut off: hot reports served stale %s after the cut, a miss refused in %s, %d reads of hot reports refused of %d; "+
			"link back: a fresh answer %s after, no stale report served as a hit",
			staleAfter.Round(time.Millisecond), miss.took.Round(time.Millisecond), loadRefused.Load(), loadReads.Load(), freshAfter.Round(time.Millisecond))
	})
}

// TestPartitionsSentinelFailover: the Redis primary, its replica and three
// sentinels on hosts of their own (primary and sentinel 1 on host a,
// replica and sentinel 2 on host b, sentinel 3 on host c; a quorum of 2),
// the BI platform, an API and a worker each on another, the API and the
// worker on the sentinels alone, under a steady load of hits and misses.
// Host a's link is cut: the primary and sentinel 1 (which a process may
// have picked to ask) are lost at once, without a connection refused. The
// other two sentinels promote the replica; misses are served again within
// 10 s of +switch-master, without a restart. Once a's link is back, the
// sentinels demote the old primary, and every report served to a miss
// begun after the cut is on the new primary and read again as a hit, each
// filled with one BI call.
func TestPartitionsSentinelFailover(t *testing.T) {
	n := netnstest.New(t)
	redisServer := redistest.Program(t, "redis-server")
	a, b, c := n.Host("a"), n.Host("b"), n.Host("c")
	biHost, apiHost, workerHost := n.Host("bi"), n.Host("api"), n.Host("w")

	old := redisOn(t, a, redisServer)
	next := redisOn(t, b, redisServer, "--replicaof", a.IP, "6379")
	wait.For(t, "the replica to sync with the primary", 15*time.Second, func() bool {
		info, err := next.Info(t.Context(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	var addrs []string // sentinel 1's first
	for _, h := range []*netnstest.Host{a, b, c} {
		dir := t.TempDir()
		conf := fmt.Sprintf("port 26379\nbind 0.0.0.0\nprotected-mode no\ndir %s\nsentinel announce-ip %s\n"+
			"sentinel monitor %s %s 6379 2\n"+
			"sentinel down-after-milliseconds %[3]s 1000\n"+
			"sentinel failover-timeout %[3]s 3000\n", dir, h.IP, redistest.SentinelMaster, a.IP)
		file := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites it
		if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		runOn(t, h, redisServer, file, "--sentinel")
		addrs = append(addrs, h.IP+":26379")
	}
	// The test asks sentinel 2, from host b: the cut leaves it reachable.
	sentinels := &redistest.SentinelGroup{Addrs: []string{addrs[1], addrs[2], addrs[0]}, Dial: b.Dial}
	sentinels.AwaitKnown(t, 1)

	bi := startPartitionBI(t, biHost)
	env := map[string]string{
		"DASHCACHE_REDIS_SENTINEL_ADDRS":  strings.Join(addrs, ","),
		"DASHCACHE_REDIS_SENTINEL_MASTER": redistest.SentinelMaster,
		"DASHCACHE_PROVIDER_URL":          bi.URL,
		"DASHCACHE_PROVIDER_RATE":         "100",
		"DASHCACHE_LISTEN":                "127.0.0.1:8080",
	}
	startOn(t, workerHost, "worker", env)
	startOn(t, apiHost, "api", env)
	awaitReady(t, apiHost, workerHost)
	api := &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{DialContext: apiHost.Dial, MaxIdleConnsPerHost: 100}}
	l := startLoad(t, api, "127.0.0.1:8080", bi.allCalls)

	switchedc := sentinels.Switched(t)
	a.Cut()
	cutAt := time.Now()
	t.Cleanup(a.Restore) // restoring twice is harmless
	var switched time.Time
	select {
	case switched = <-switchedc:
	case <-time.After(30 * time.Second):
		t.Fatal("no +switch-master from sentinel 2 within 30 s of the cut")
	}
	if p := sentinels.Primary(); p != b.IP+":6379" {
		t.Fatalf("the sentinels switched to %s, want the replica %s:6379", p, b.IP)
	}
	f := l.recover(t, switched)
	if f.recovered > 10*time.Second {
		t.Errorf("misses served again %s after the switch, want within 10 s", f.recovered)
	}

	a.Restore()
	restoredAt := time.Now()
	wait.For(t, "the old primary to be demoted and synced with the new one", 30*time.Second, func() bool {
		role, err := old.Do(t.Context(), "ROLE").Slice()
		info, err2 := old.Info(t.Context(), "replication").Result()
		return err == nil && err2 == nil && len(role) > 0 && role[0] == "slave" &&
			strings.Contains(info, "master_host:"+b.IP) && strings.Contains(info, "master_link_status:up")
	})
	demoted := time.Since(restoredAt)
	if p := sentinels.Primary(); p != b.IP+":6379" {
		t.Fatalf("the sentinels give the primary as %s once host a is back, want %s:6379", p, b.IP)
	}

	// Nothing the new primary took was lost, nor paid twice: every report
	// served to a miss begun after the cut is on it, read again as a hit
	// (no BI call), and was filled with one BI call.
	l.checkKept(t, &redis.Options{Addr: "127.0.0.1:6379", Dialer: b.Dial}, cutAt)
	var twice []string
	for _, r := range l.reads {
		if !r.miss || r.status != http.StatusOK || !r.start.After(cutAt) {
			continue
		}
		if again := l.get(r.customer, true, "10s"); again.status != http.StatusOK {
			t.Errorf("%s, filled after the cut, read once host a is back: %d", r.customer, again.status)
		}
		if calls := bi.callsOf(r.customer); calls != 1 {
			twice = append(twice, fmt.Sprintf("%s: %d", r.customer, calls))
		}
	}
	if len(twice) > 0 {
		t.Errorf("reports filled after the cut with other than one BI call: %v", twice)
	}
	// The service keeps serving: new misses too.
	for i := range 5 {
		if r := l.get(fmt.Sprintf("after%d", i), true, "10s"); r.status != http.StatusOK {
			t.Errorf("a miss once host a is back: %d", r.status)
		}
	}
	t.Logf("Sentinel, primary's host cut off: +switch-master %s after the cut; misses served again %s after it; "+
		"reads refused %d of %d (misses %d of %d); BI calls %d for %d misses served; "+
		"the old primary a replica of the new one %s after its link's return",
		switched.Sub(cutAt).Round(time.Millisecond), f.recovered.Round(time.Millisecond),
		f.refused, f.reads, f.missesRefused, f.misses, f.biCalls, f.served, demoted.Round(time.Millisecond))
}
