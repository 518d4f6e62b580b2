package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
)

// TestCorruptEntryIsAMiss: garbage, or a valid header over a truncated body,
// is not served (neither as 200 nor as a lasting 500): the read is a miss
// that asks for the fill, whose report replaces the entry.
func TestCorruptEntryIsAMiss(t *testing.T) {
	f := newFixture(t)
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	fill(t, f.store, k, `{"revenue":12}`)
	whole, _ := f.mini.Get(store.EntryKey(k))
	for i, bad := range []string{"garbage", whole[:len(whole)-3]} {
		f.mini.Set(store.EntryKey(k), bad)
		resp, body := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31&wait=0s")
		if resp.StatusCode != http.StatusAccepted || f.enqueued.Load() != int64(i+1) {
			t.Errorf("corrupt entry %d: %d %s after %d enqueues; want 202 and a fill asked for", i, resp.StatusCode, body, f.enqueued.Load())
		}
	}
	fill(t, f.store, k, `{"revenue":12}`)
	if resp, body := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31"); resp.StatusCode != 200 || !strings.Contains(body, `"revenue":12`) {
		t.Errorf("after the fill: %d %s", resp.StatusCode, body)
	}
}

// TestHangUpIsCanceled: a reader who hangs up while waiting is counted as
// canceled, not as an error.
func TestHangUpIsCanceled(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *api.Config) { c.Registerer = reg })
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.url+"/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31&wait=20s", nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := f.client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	waitReaders(t, f, k.String(), 1)
	cancel()
	<-done
	canceled := prometheusCounter(reg, "dashcache_reads_total", "canceled")
	wait.For(t, "the hang-up to be counted as canceled", 10*time.Second, func() bool { return canceled() >= 1 })
	if n := prometheusCounter(reg, "dashcache_reads_total", "error")(); n != 0 {
		t.Errorf("%v errors counted for a hang-up", n)
	}
}

// TestWaitOutlivesRedisOutage: a reader waiting for a fill through a Redis
// outage goes on waiting, and gets the report once Redis is back, from the
// next round of its wait even if the notification was lost.
func TestWaitOutlivesRedisOutage(t *testing.T) {
	f := newFixture(t)
	api.SetReassertEvery(f.srv, 50*time.Millisecond)
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	status := make(chan int, 1)
	go func() {
		resp, _ := f.get(t, "customer=acme&from=2025-01-01&to=2025-01-31&wait=20s")
		status <- resp.StatusCode
	}()
	wait.For(t, "the reader to ask for the fill", 10*time.Second, func() bool { return f.enqueued.Load() >= 1 })
	f.mini.Close()
	time.Sleep(300 * time.Millisecond) // several rounds fail
	if err := f.mini.Restart(); err != nil {
		t.Fatal(err)
	}
	// Filled behind the server's back: no notification reaches it.
	e := store.NewEntry(k, []byte(`{"back":true}`), now, time.Second, time.Hour)
	f.mini.Set(store.EntryKey(k), string(e))
	if s := <-status; s != http.StatusOK {
		t.Errorf("the waiting reader got %d, want the report", s)
	}
}

// waitReaders waits, up to 10 s, until n readers share the wait on the
// canonical key.
func waitReaders(t *testing.T, f *fixture, canonical string, n int) {
	t.Helper()
	var joined int
	if !wait.Until(10*time.Second, func() bool { joined = api.Readers(f.srv, canonical); return joined >= n }) {
		t.Fatalf("%d readers joined the wait on %s, want %d", joined, canonical, n)
	}
}

// prometheusCounter returns a reader of the counter name{result=label}.
func prometheusCounter(reg *prometheus.Registry, name, label string) func() float64 {
	return func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetValue() == label {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		return 0
	}
}
