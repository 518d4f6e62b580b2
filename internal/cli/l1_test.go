package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// served is one answer of a hammering reader.
type served struct {
	start, end time.Time
	etag       string
}

// hammer reads the report through addr until stop closes and returns what
// each read got (the client asks for gzip: the ETags are the gzip
// representation's).
func hammer(t *testing.T, addr string, stop <-chan struct{}) []served {
	var out []served
	for {
		select {
		case <-stop:
			return out
		default:
		}
		start := time.Now()
		resp, err := readClient.Get("http://" + addr + "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31")
		if err != nil {
			t.Error(err)
			return out
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", addr, resp.StatusCode)
		}
		out = append(out, served{start, time.Now(), resp.Header.Get("Etag")})
	}
}

// checkExact fails the test if, on one API process, a read that began after
// another read had got the new bytes got the old ones, or if the new ones
// never came.
func checkExact(t *testing.T, addr, old string, reads []served) {
	t.Helper()
	var firstNew time.Time
	for _, r := range reads {
		if r.etag != old && (firstNew.IsZero() || r.end.Before(firstNew)) {
			firstNew = r.end
		}
	}
	if firstNew.IsZero() {
		t.Fatalf("%s never served the refreshed report (%d reads)", addr, len(reads))
	}
	for _, r := range reads {
		if r.etag == old && r.start.After(firstNew) {
			t.Fatalf("%s served the old bytes to a read that began after it had served the new ones", addr)
		}
	}
}

// l1Fleet runs a worker and two API processes (each with its L1) on the
// Redis at redisURL (rdb), reads the report once through each, and returns
// their addresses, the report's ETag, and a function that refreshes the
// report (a forced warm) and returns once the new entry is in Redis.
func l1Fleet(t *testing.T, redisURL string, rdb *redis.Client, latency time.Duration) (apis []string, old string, refresh func() error) {
	bi := newBIServer(t, latency, "")
	// Every answer differs (so a refresh makes a new ETag), and is large
	// enough to be stored compressed.
	var calls atomic.Int64
	bi.answerWith(func(w http.ResponseWriter) {
		time.Sleep(latency)
		fmt.Fprintf(w, `{"call":%d,"pad":"%s"}`, calls.Add(1), strings.Repeat("x", 2000))
	})
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redisURL,
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	startRole(t, "worker", env)
	apis = []string{startRole(t, "api", env), startRole(t, "api", env)}
	for _, a := range apis {
		r := get(t, a, "acme", "2025-01-01", "2025-01-31", "10s")
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", a, r.status)
		}
	}
	resp, err := http.Get("http://" + apis[0] + "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	old = resp.Header.Get("Etag")
	k, _ := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", time.Now())
	refresh = func() error {
		err := Run(t.Context(), []string{"warm", "--customers", "acme", "--from", "2025-01-01", "--to", "2025-01-31", "--force"},
			func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err != nil {
			return err
		}
		// Until, not For: refresh may run off the test's goroutine.
		if !wait.Until(10*time.Second, func() bool {
			raw, _ := store.New(rdb).Cache.Get(context.Background(), k)
			e, err := store.ParseEntry(raw)
			return err == nil && e.GzipETag != old
		}) {
			return errors.New("the refresh never landed")
		}
		return nil
	}
	return apis, old, refresh
}

// TestL1ExactAcrossProcesses: two API processes serve a report from their
// L1; a worker refreshes it; each serves the new bytes (a new ETag) to every
// read that begins after it first served them, and serves them within a
// second of the refresh.
func TestL1ExactAcrossProcesses(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	apis, old, refresh := l1Fleet(t, redisURL, rdb, 50*time.Millisecond)
	stop := make(chan struct{})
	reads := make([][]served, len(apis))
	var wg sync.WaitGroup
	for i, a := range apis {
		wg.Go(func() { reads[i] = hammer(t, a, stop) })
	}
	if err := refresh(); err != nil {
		t.Fatal(err)
	}
	landed := time.Now()
	time.Sleep(time.Second) // not a wait: the readers go on past the half second checked below
	close(stop)
	wg.Wait()
	for i, a := range apis {
		checkExact(t, a, old, reads[i])
		for _, r := range reads[i] {
			if r.etag == old && r.start.After(landed.Add(time.Second/2)) {
				t.Errorf("%s still served the old bytes %s after the refresh landed", a, r.start.Sub(landed))
			}
		}
		t.Logf("%s: %d reads", a, len(reads[i]))
	}
}

// TestL1PubsubKilled: the API processes' pub/sub connections are killed
// (CLIENT KILL TYPE pubsub) again and again while a refresh lands, so its
// notification never reaches them: they drop their L1 when the connection
// breaks, and serve the new bytes, not the old, once they have subscribed
// again. On a Redis of its own: CLIENT KILL spans the server, and would cut
// other tests' subscriptions.
func TestL1PubsubKilled(t *testing.T) {
	srv := redistest.Server(t)
	opts, err := redis.ParseURL(srv.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	apis, old, refresh := l1Fleet(t, srv.URL(0), rdb, 300*time.Millisecond)
	stop := make(chan struct{})
	reads := make([][]served, len(apis))
	var wg sync.WaitGroup
	for i, a := range apis {
		wg.Go(func() { reads[i] = hammer(t, a, stop) })
	}
	// Kill their pub/sub connections again and again while the refresh
	// runs, until it has landed: its notification finds no subscriber.
	if n := rdb.PubSubNumSub(context.Background(), store.FillChannel).Val()[store.FillChannel]; n != int64(len(apis)) {
		t.Fatalf("%d subscribers to the fill notifications before the kills, want the %d API processes", n, len(apis))
	}
	done := make(chan struct{})
	var refreshErr error
	go func() {
		defer close(done)
		refreshErr = refresh()
	}()
	var killed int64
	for landing := true; landing; {
		select {
		case <-done:
			landing = false
		case <-time.After(10 * time.Millisecond):
		}
		n, err := rdb.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Result()
		if err != nil {
			t.Fatal(err)
		}
		killed += n
	}
	if refreshErr != nil {
		t.Fatal(refreshErr)
	}
	if killed < int64(len(apis)) {
		t.Fatalf("CLIENT KILL TYPE pubsub killed %d connections", killed)
	}
	landed := time.Now()
	time.Sleep(2 * time.Second) // the processes resubscribe
	close(stop)
	wg.Wait()
	for i, a := range apis {
		checkExact(t, a, old, reads[i])
		var late []string
		for _, r := range reads[i] {
			if r.etag == old && r.start.After(landed.Add(time.Second)) {
				late = append(late, r.start.Sub(landed).String())
			}
		}
		if len(late) > 0 {
			t.Errorf("%s served the old bytes after the refresh landed and it had resubscribed: %s", a, strings.Join(late, ", "))
		}
		t.Logf("%s: %d reads", a, len(reads[i]))
	}
}
