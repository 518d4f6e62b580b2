package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/roletest"
	"github.com/dashcache/dashcache/internal/wait"
)

// balancer is a load balancer as a test needs one: it sends each request to
// the next of its backends whose /readyz answered 200 at its last probe
// (every probeEvery), and answers 503 when none did.
type balancer struct {
	mu       sync.Mutex
	backends []*backend
	next     int
}

// probeEvery is the balancer's readiness probe period.
const probeEvery = 100 * time.Millisecond

type backend struct {
	addr   string
	proxy  *httputil.ReverseProxy
	ready  atomic.Bool
	served atomic.Int64
}

// add probes the API process at addr until the test ends, and sends it
// requests while it is ready.
func (lb *balancer) add(t *testing.T, addr string) *backend {
	b := &backend{addr: addr, proxy: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})}
	b.proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, fmt.Sprintf("backend %s: %v", addr, err), http.StatusBadGateway)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		client := &http.Client{Timeout: time.Second}
		for {
			resp, err := client.Get("http://" + addr + "/readyz")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			b.ready.Store(err == nil && resp.StatusCode == http.StatusOK)
			select {
			case <-ctx.Done():
				return
			case <-time.After(probeEvery):
			}
		}
	}()
	lb.mu.Lock()
	lb.backends = append(lb.backends, b)
	lb.mu.Unlock()
	return b
}

func (lb *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	lb.mu.Lock()
	var b *backend
	for range lb.backends {
		c := lb.backends[lb.next%len(lb.backends)]
		lb.next++
		if c.ready.Load() {
			b = c
			break
		}
	}
	lb.mu.Unlock()
	if b == nil {
		http.Error(w, "no backend ready", http.StatusServiceUnavailable)
		return
	}
	b.served.Add(1)
	b.proxy.ServeHTTP(w, r)
}

// startAPI runs an API process in process with env and returns its address
// and a function that sends it SIGTERM (it then drains, as the binary does).
func startAPI(t *testing.T, env map[string]string) (addr string, term func()) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	addr = roletest.Start(t, "api", func(parent context.Context, stdout io.Writer) error {
		context.AfterFunc(parent, stop)
		return Run(ctx, []string{"api"}, func(k string) string { return env[k] }, stdout, io.Discard)
	}, nil)
	return addr, stop
}

// TestRollingRestart: two API processes behind a load balancer that follows
// /readyz are replaced one after the other under a steady load of hits and
// misses: each is sent SIGTERM (it turns /readyz 503 at once and serves on
// for DASHCACHE_DRAIN), a new one is started, and no request is refused.
func TestRollingRestart(t *testing.T) {
	const reports, readers = 20, 8
	redisURL := redistest.URL(t)
	bi := newBIServer(t, 50*time.Millisecond, "")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     redisURL,
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "1000",
		"DASHCACHE_DRAIN":         "1s",
	}
	startRole(t, "worker", env)
	lb := new(balancer)
	front := httptest.NewServer(lb)
	defer front.Close()
	var olds []*backend
	var terms []func()
	for range 2 {
		addr, term := startAPI(t, env)
		olds, terms = append(olds, lb.add(t, addr)), append(terms, term)
	}
	wait.For(t, "both API processes to be ready", 10*time.Second, func() bool { return olds[0].ready.Load() && olds[1].ready.Load() })

	// The load: reads of reports 0..reports-1, a new range (a miss) every
	// tenth read.
	stop := make(chan struct{})
	var sent, refused atomic.Int64
	var firstRefusal atomic.Pointer[string]
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: readers}}
	for g := range readers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				to := "2025-01-31"
				if i%10 == 9 {
					to = fmt.Sprintf("2025-02-%02d", 1+(g*100+i)%28) // a report not read before
				}
				resp, err := client.Get(fmt.Sprintf("%s/v1/reports?customer=roll%d&from=2025-01-01&to=%s&wait=10s", front.URL, (g+i)%reports, to))
				sent.Add(1)
				var body []byte
				if err == nil {
					body, _ = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode/100 != 2 {
					refused.Add(1)
					msg := fmt.Sprint(err)
					if err == nil {
						msg = fmt.Sprintf("%d %s", resp.StatusCode, body)
					}
					firstRefusal.CompareAndSwap(nil, &msg)
				}
			}
		})
	}
	served := func(b *backend, n int64) {
		t.Helper()
		from := b.served.Load()
		wait.For(t, fmt.Sprintf("%s to serve %d requests", b.addr, n), 20*time.Second, func() bool { return b.served.Load() >= from+n })
	}
	served(olds[0], 100)
	served(olds[1], 100)

	// Replace each in turn.
	var news []*backend
	var outOfRotation []time.Duration
	for i, old := range olds {
		termed := time.Now()
		terms[i]()
		wait.For(t, "the balancer to take the draining process out", 5*time.Second, func() bool { return !old.ready.Load() })
		outOfRotation = append(outOfRotation, time.Since(termed))
		addr, _ := startAPI(t, env)
		b := lb.add(t, addr)
		news = append(news, b)
		wait.For(t, "the new process to be ready", 10*time.Second, b.ready.Load)
		served(b, 100)
		// The old one has stopped: its /readyz no longer answers.
		wait.For(t, "the old process to stop", 10*time.Second, func() bool {
			resp, err := http.Get("http://" + old.addr + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err != nil
		})
	}
	served(news[0], 100)
	served(news[1], 100)
	close(stop)
	wg.Wait()

	if n := refused.Load(); n > 0 {
		t.Errorf("%d of %d requests refused during the rolling restart; the first: %s", n, sent.Load(), *firstRefusal.Load())
	}
	t.Logf("rolling restart of 2 API processes (DASHCACHE_DRAIN=1s, readiness probed every %s) under %d readers: %d requests, %d refused; "+
		"taken out of rotation %s and %s after SIGTERM; served by the old processes %d and %d, by the new %d and %d; %d BI calls",
		probeEvery, readers, sent.Load(), refused.Load(), outOfRotation[0].Round(time.Millisecond), outOfRotation[1].Round(time.Millisecond),
		olds[0].served.Load(), olds[1].served.Load(), news[0].served.Load(), news[1].served.Load(), bi.calls.Load())
}
