package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/roletest"
	"github.com/dashcache/dashcache/provider"
)

// testSecret is the BI platform's bearer token in tests; no log line may show it.
const testSecret = "bi-secret-7f3a"

// startRole runs one role in process, as `dashcache ROLE` would with env as its
// whole environment, and returns the address it listens on. The role is stopped
// (and must exit cleanly) when the test ends. No log line may show testSecret;
// error lines are shown in the test's log.
func startRole(t testing.TB, role string, env map[string]string) string {
	t.Helper()
	return startRoleLogging(t, role, env, nil)
}

// startRoleLogging starts a role as startRole does, and passes each of its
// log lines to logged (nil: none).
func startRoleLogging(t testing.TB, role string, env map[string]string, logged func(line string)) string {
	t.Helper()
	return roletest.Start(t, role, func(ctx context.Context, stdout io.Writer) error {
		return Run(ctx, []string{role}, func(k string) string {
			if _, set := env[k]; !set && k == "DASHCACHE_DRAIN" {
				return "0s" // a test's roles stop at once unless it asks
			}
			return env[k]
		}, stdout, io.Discard)
	}, func(line []byte) {
		if strings.Contains(string(line), testSecret) {
			t.Errorf("%s logged a secret: %s", role, line)
		}
		if logged != nil {
			logged(string(line))
		}
		var l struct{ Level string }
		if json.Unmarshal(line, &l) == nil && l.Level == "error" {
			t.Logf("%s: %s", role, line)
		}
	})
}

// TestStampede: 300 concurrent reads of 10 uncached reports through 3 API
// servers and 2 workers on a real Redis make exactly 10 calls at the BI server,
// and every reader gets the same bytes as the others reading its report.
func TestStampede(t *testing.T) {
	const (
		apis, workers, keys, readers = 3, 2, 10, 300
		biLatency                    = time.Second
	)
	redisURL, rdb := redistest.URLClient(t)
	bi := provider.NewSimulator(provider.SimConfig{MinLatency: biLatency, MaxLatency: biLatency, Token: testSecret})
	biServer := httptest.NewServer(bi.Handler())
	defer biServer.Close()

	env := map[string]string{
		"DASHCACHE_REDIS_URL":      redisURL,
		"DASHCACHE_LISTEN":         "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":   biServer.URL,
		"DASHCACHE_PROVIDER_TOKEN": testSecret,
		"DASHCACHE_PROVIDER_RATE":  "100",
	}
	results, apiAddrs, workerAddrs := runStampede(t, env, apis, workers, keys, readers, "cust", "30s")
	// Exactly: a task left to run after the readers were answered (a
	// duplicate fill, a rescue) has run once the queues are idle, and a BI
	// call it made is counted.
	waitIdle(t, rdb)
	if got := bi.Calls(); got != keys {
		t.Fatalf("the BI server counted %d calls for %d keys, want exactly %d", got, keys, keys)
	}
	var extra []time.Duration
	for _, r := range results {
		extra = append(extra, r.latency-biLatency)
	}

	// The workers' own metrics agree with the BI server.
	var okCalls float64
	for _, addr := range workerAddrs {
		okCalls += scrape(t, addr, `dashcache_provider_calls_total{outcome="ok"}`)
	}
	if okCalls != keys {
		t.Errorf("workers' dashcache_provider_calls_total{outcome=ok} sum to %v, want %d", okCalls, keys)
	}
	var reads float64
	for _, addr := range apiAddrs {
		reads += scrape(t, addr, `dashcache_reads_total{result="hit"}`) + scrape(t, addr, `dashcache_reads_total{result="miss"}`)
	}
	if reads != readers {
		t.Errorf("API servers counted %v hit+miss reads, want %d", reads, readers)
	}
	slices.Sort(extra)
	t.Logf("BI calls %d for %d keys and %d readers; reader latency minus BI latency: p50 %s, p99 %s, max %s",
		bi.Calls(), keys, readers, extra[len(extra)/2], extra[len(extra)*99/100], extra[len(extra)-1])
}

// scrape returns the value of one sample (name{labels} exactly as exposed) from
// the /metrics of the server at addr.
func scrape(t testing.TB, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s on %s: %v", sample, addr, err)
			}
			return f
		}
	}
	t.Fatalf("%s not exposed by %s/metrics", sample, addr)
	return 0
}

// readResult is one reader's answer.
type readResult struct {
	status  int
	body    string
	latency time.Duration
	err     error
}

// runStampede starts workers and API servers (the real roles) with env, then
// sends readers concurrent reads, released together, of keys uncached reports
// (customers prefix0, prefix1, ...) round-robin over the API servers, each
// willing to wait up to wait. It fails the test unless every read is a 200 and
// all readers of a report got the same bytes.
func runStampede(t *testing.T, env map[string]string, apis, workers, keys, readers int, prefix, wait string) (results []readResult, apiAddrs, workerAddrs []string) {
	t.Helper()
	for range workers {
		workerAddrs = append(workerAddrs, startRole(t, "worker", env))
	}
	for range apis {
		apiAddrs = append(apiAddrs, startRole(t, "api", env))
	}
	results = make([]readResult, readers)
	client := &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: readers}}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			url := fmt.Sprintf("http://%s/v1/reports?customer=%s%d&from=2025-01-01&to=2025-01-31&wait=%s", apiAddrs[i%apis], prefix, i%keys, wait)
			<-start
			t0 := time.Now()
			resp, err := client.Get(url)
			r := readResult{err: err, latency: time.Since(t0)}
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r.status, r.body = resp.StatusCode, string(b)
			}
			results[i] = r
		})
	}
	close(start)
	wg.Wait()

	bodies := map[int]string{}
	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK || r.body == "" {
			t.Fatalf("reader %d: status %d err %v body %q", i, r.status, r.err, r.body)
		}
		if prev, ok := bodies[i%keys]; ok && prev != r.body {
			t.Fatalf("readers of %s%d got different bodies:\n%s\n%s", prefix, i%keys, prev, r.body)
		}
		bodies[i%keys] = r.body
	}
	return results, apiAddrs, workerAddrs
}
