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

// partitionBI is a BI platform in its own namespace that counts the calls
// of each customer and who made them. The calls of customer holdCustomer
// wait to be answered (answer).
type partitionBI struct {
	URL      string
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
	bi := &partitionBI{URL: "http://" + h.IP + ":8081", arrivals: make(chan biArrival, 100), calls: map[string]int{}, holds: map[int]chan struct{}{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		customer, _, _ := strings.Cut(r.Header.Get("Idempotency-Key"), "|")
		from, _, _ := net.SplitHostPort(r.RemoteAddr)
		bi.mu.Lock()
		bi.calls[customer]++
		n := bi.calls[customer]
		bi.mu.Unlock()
		bi.arrivals <- biArrival{customer, from, n}
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

// TestPartitions runs a fleet across hosts, each in a network namespace of
// its own on one bridge: Redis, the BI platform, two workers and an API
// process; the test cuts one host's link at a time and restores it.
func TestPartitions(t *testing.T) {
	n := netnstest.New(t)
	redisServer := redistest.Program(t, "redis-server")
	redisHost, biHost, apiHost := n.Host("redis"), n.Host("bi"), n.Host("api")
	workers := []*netnstest.Host{n.Host("w1"), n.Host("w2")}

	rcmd := redisHost.Command(redisServer, "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	if err := rcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rcmd.Process.Kill(); rcmd.Wait() })
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", Dialer: redisHost.Dial})
	t.Cleanup(func() { rdb.Close() })
	wait.For(t, "Redis to answer", 10*time.Second, func() bool { return rdb.Ping(t.Context()).Err() == nil })

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
	ready := func(c *http.Client) bool {
		resp, err := c.Get("http://127.0.0.1:8080/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for _, h := range append([]*netnstest.Host{apiHost}, workers...) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: h.Dial}}
		wait.For(t, h.Name+" to be ready", 20*time.Second, func() bool { return ready(c) })
	}

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
