package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache/client"
	"github.com/dashcache/dashcache/internal/cli"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/roletest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
)

const (
	readerKey  = "reader-key-0123456789"
	adminToken = "admin-token-0123456789"
)

// TestAgainstTheService reads reports with the client through the whole
// service (role all: the API and a worker, in process) on a real Redis,
// with a BI platform whose answers the test holds back, and counts each
// answer at the service, in its access log.
func TestAgainstTheService(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	bi := newHeldBI(t)
	svc := startService(t, map[string]string{
		"DASHCACHE_DRAIN":            "0s", // stop at once when the test ends
		"DASHCACHE_REDIS_URL":        redisURL,
		"DASHCACHE_LISTEN":           "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":     bi.URL,
		"DASHCACHE_CUSTOMER_PENDING": "1", // a second report on its way is refused: 429
		"DASHCACHE_API_KEYS":         readerKey + "=*",
		"DASHCACHE_ADMIN_TOKEN":      adminToken,
	})

	// A miss that the BI platform does not answer within the read's wait
	// is a 202; the client asks again after its Retry-After, and gets the
	// report once it is computed.
	t.Run("miss", func(t *testing.T) {
		release := bi.hold(t, "miss-co")
		c, seen := svc.client(t, client.Config{Wait: 200 * time.Millisecond}, func(status int) {
			if status == http.StatusAccepted {
				release() // the BI platform answers once a 202 has come back
			}
		})
		rep, err := c.Get(ctxFor(t, time.Minute), "", "miss-co", "2025-01-01", "2025-01-31")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Customer != "miss-co" || string(rep.Data) != bi.data("miss-co") || rep.Revalidated {
			t.Errorf("report %s %s..%s, data %.40s..., revalidated %t", rep.Customer, rep.From, rep.To, rep.Data, rep.Revalidated)
		}
		statuses := svc.waitAnswers(t, "customer=miss-co&from=2025-01-01&to=2025-01-31", len(seen()))
		t.Logf("the service answered %v", statuses)
		if statuses[0] != http.StatusAccepted || statuses[len(statuses)-1] != http.StatusOK || slices.Index(statuses, http.StatusOK) != len(statuses)-1 {
			t.Errorf("the service answered %v; want 202s, then 200", statuses)
		}
		if n := bi.callsOf("miss-co"); n != 1 {
			t.Errorf("%d BI calls, want 1", n)
		}
	})

	// A customer with a report on its way already (DASHCACHE_CUSTOMER_PENDING=1)
	// is refused another: 429 with Retry-After; the client asks again after
	// it, and gets the report once the first one's fill has ended.
	t.Run("429", func(t *testing.T) {
		release := bi.hold(t, "busy-co")
		if status := rawRead(t, svc.url+"/v1/reports?customer=busy-co&from=2025-01-01&to=2025-01-31&wait=0s"); status != http.StatusAccepted {
			t.Fatalf("the first report of busy-co: %d, want 202: its fill held at the BI platform", status)
		}
		c, seen := svc.client(t, client.Config{}, func(status int) {
			if status == http.StatusTooManyRequests {
				release() // the first report's fill ends once a 429 has come back
			}
		})
		rep, err := c.Get(ctxFor(t, time.Minute), "", "busy-co", "2025-02-01", "2025-02-28")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Customer != "busy-co" || rep.From != "2025-02-01" || string(rep.Data) != bi.data("busy-co") {
			t.Errorf("report %s %s..%s, data %.40s...", rep.Customer, rep.From, rep.To, rep.Data)
		}
		statuses := svc.waitAnswers(t, "customer=busy-co&from=2025-02-01&to=2025-02-28", len(seen()))
		t.Logf("the service answered %v", statuses)
		if statuses[0] != http.StatusTooManyRequests || statuses[len(statuses)-1] != http.StatusOK {
			t.Errorf("the service answered %v; want a 429 first, the report last", statuses)
		}
		ex := seen()
		for i, e := range ex[:len(ex)-1] {
			if e.status != http.StatusTooManyRequests {
				continue
			}
			if e.retryAfter != "2" {
				t.Errorf("a 429 with Retry-After %q, want 2 (s)", e.retryAfter)
			}
			if gap := ex[i+1].sent.Sub(e.answered); gap < 2*time.Second {
				t.Errorf("asked again %s after a 429, before its Retry-After (2 s)", gap)
			}
		}
	})

	// A second read of an unchanged report revalidates: the service answers
	// 304 and the client returns the body it kept. The report is over
	// 1 KiB, so the service sends it gzip-compressed, with the ETag of that
	// representation.
	t.Run("304", func(t *testing.T) {
		c, _ := svc.client(t, client.Config{}, nil)
		ctx := ctxFor(t, time.Minute)
		first, err := c.Get(ctx, "", "etag-co", "2025-01-01", "2025-01-31")
		if err != nil {
			t.Fatal(err)
		}
		second, err := c.Get(ctx, "", "etag-co", "2025-01-01", "2025-01-31")
		if err != nil {
			t.Fatal(err)
		}
		if first.Revalidated || !second.Revalidated || string(second.Body) != string(first.Body) || second.ETag != first.ETag ||
			string(second.Data) != bi.data("etag-co") || second.XCache != client.CacheHit || !strings.HasSuffix(first.ETag, `-gzip"`) {
			t.Errorf("first read: ETag %s, revalidated %t; second: ETag %s, %s, revalidated %t, same body %t",
				first.ETag, first.Revalidated, second.ETag, second.XCache, second.Revalidated, string(second.Body) == string(first.Body))
		}
		if statuses := svc.waitAnswers(t, "customer=etag-co&from=2025-01-01&to=2025-01-31", 2); !slices.Equal(statuses, []int{http.StatusOK, http.StatusNotModified}) {
			t.Errorf("the service answered %v, want [200 304]", statuses)
		}
		if n := bi.callsOf("etag-co"); n != 1 {
			t.Errorf("%d BI calls, want 1", n)
		}
	})

	// Warm and Invalidate with the admin token: the report warmed is
	// computed ahead of its reader, and an invalidation of one of its days
	// makes it stale.
	t.Run("admin", func(t *testing.T) {
		c, _ := svc.client(t, client.Config{AdminToken: adminToken}, nil)
		ctx := ctxFor(t, time.Minute)
		warmed, err := c.Warm(ctx, client.WarmRequest{Customers: []string{"warm-co"}, From: "2025-01-01", To: "2025-01-31"})
		if err != nil {
			t.Fatal(err)
		}
		if warmed.Enqueued != 1 || len(warmed.Keys) != 1 || warmed.Keys[0] != (client.WarmedKey{Key: "warm-co|2025-01-01|2025-01-31", Result: client.WarmEnqueued}) {
			t.Errorf("warm: %+v", warmed)
		}
		index := store.New(rdb).Index
		wait.For(t, "the warmed report to be indexed", 20*time.Second, func() bool {
			cached, err := index.Cached(ctx, "warm-co", time.Now())
			return err == nil && len(cached) == 1
		})
		if rep, err := c.Get(ctx, "", "warm-co", "2025-01-01", "2025-01-31"); err != nil || rep.XCache != client.CacheHit {
			t.Fatalf("reading the warmed report: %v, %+v; want a hit", err, rep)
		}
		inv, err := c.Invalidate(ctx, client.InvalidateRequest{Customers: []string{"warm-co"}, From: "2025-01-15"})
		if err != nil {
			t.Fatal(err)
		}
		if inv.Matched != 1 || inv.MarkedStale != 1 {
			t.Errorf("invalidate: %+v, want the report matched and marked stale", inv)
		}
		if rep, err := c.Get(ctx, "", "warm-co", "2025-01-01", "2025-01-31"); err != nil || rep.XCache != client.CacheStale {
			t.Errorf("reading the invalidated report: %v, %+v; want it stale", err, rep)
		}
	})
}

// ctxFor returns a context that ends after d, or with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// rawRead reads url with the reader's key, without the client, and returns
// the status.
func rawRead(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+readerKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// heldBI is a BI platform of the provider contract whose answers to a
// customer can be held back until the test releases them. Each answer is
// over 1 KiB.
type heldBI struct {
	*httptest.Server
	mu    sync.Mutex
	gates map[string]chan struct{} // closed on release
	calls map[string]int
}

func newHeldBI(t *testing.T) *heldBI {
	b := &heldBI{gates: map[string]chan struct{}{}, calls: map[string]int{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct{ Customer string }
		if r.URL.Path != "/query" || json.NewDecoder(r.Body).Decode(&q) != nil {
			http.Error(w, "POST /query with a JSON body", http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.calls[q.Customer]++
		gate := b.gates[q.Customer]
		b.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, b.data(q.Customer))
	}))
	t.Cleanup(b.Close)
	return b
}

// data is the report data of a customer: over 1 KiB.
func (b *heldBI) data(customer string) string {
	rows := make([]string, 300)
	for i := range rows {
		rows[i] = fmt.Sprint(i * 7)
	}
	return fmt.Sprintf(`{"customer":%q,"rows":[%s]}`, customer, strings.Join(rows, ","))
}

// hold holds back the answers to customer until release is called, or
// the test ends.
func (b *heldBI) hold(t *testing.T, customer string) (release func()) {
	gate := make(chan struct{})
	b.mu.Lock()
	b.gates[customer] = gate
	b.mu.Unlock()
	release = sync.OnceFunc(func() { close(gate) })
	t.Cleanup(release)
	return release
}

func (b *heldBI) callsOf(customer string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[customer]
}

// service is the whole service running in process, and the answers its
// access log shows.
type service struct {
	url     string
	mu      sync.Mutex
	answers []answer
}

// answer is one line of the service's access log.
type answer struct {
	Message string
	Query   string
	Status  int
}

// startService runs the role all in process, as `dashcache all` would with
// env as its whole environment, until the test ends.
func startService(t *testing.T, env map[string]string) *service {
	t.Helper()
	s := &service{}
	addr := roletest.Start(t, "the service", func(ctx context.Context, stdout io.Writer) error {
		return cli.Run(ctx, []string{"all"}, func(k string) string { return env[k] }, stdout, io.Discard)
	}, func(line []byte) {
		var a answer
		if json.Unmarshal(line, &a) == nil && a.Message == "request" {
			s.mu.Lock()
			s.answers = append(s.answers, a)
			s.mu.Unlock()
		}
	})
	s.url = "http://" + addr
	return s
}

// waitAnswers waits for the access log to show n answers to reads whose
// query starts with query, and returns their statuses, in order.
func (s *service) waitAnswers(t *testing.T, query string, n int) []int {
	t.Helper()
	var statuses []int
	if !wait.Until(10*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		statuses = statuses[:0]
		for _, a := range s.answers {
			if strings.HasPrefix(a.Query, query) {
				statuses = append(statuses, a.Status)
			}
		}
		return len(statuses) >= n
	}) {
		t.Fatalf("the service's access log shows %v for %s, want %d answers", statuses, query, n)
	}
	return statuses
}

// exchange is one request of a client, as it saw it.
type exchange struct {
	sent, answered time.Time
	status         int
	retryAfter     string
}

// client returns a client of the service with cfg (its BaseURL and API
// key set), whose transport calls onAnswer (if not nil) with the status of
// each answer as it comes back, and seen, which returns the client's
// requests so far.
func (s *service) client(t *testing.T, cfg client.Config, onAnswer func(status int)) (c *client.Client, seen func() []exchange) {
	t.Helper()
	o := &observer{next: http.DefaultTransport, onAnswer: onAnswer}
	cfg.BaseURL, cfg.APIKey, cfg.HTTPClient = s.url, readerKey, &http.Client{Transport: o}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cfg.HTTPClient.CloseIdleConnections)
	return c, o.exchanges
}

// observer is a transport that keeps each exchange and tells onAnswer of
// each answer.
type observer struct {
	next     http.RoundTripper
	onAnswer func(status int)
	mu       sync.Mutex
	seen     []exchange
}

func (o *observer) RoundTrip(r *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := o.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.seen = append(o.seen, exchange{sent, time.Now(), resp.StatusCode, resp.Header.Get("Retry-After")})
	o.mu.Unlock()
	if o.onAnswer != nil {
		o.onAnswer(resp.StatusCode)
	}
	return resp, nil
}

func (o *observer) exchanges() []exchange {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.seen)
}
