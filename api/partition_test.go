package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
)

// partitioned sets the default report partitioned by month.
func partitioned(cfg *api.Config) {
	cfg.Reports.Partitions = map[string]*dashcache.Partition{"": dashcache.SimulatorPartition}
	cfg.L1Bytes = api.DefaultL1Bytes
}

// fillMonth writes the simulator's answer for month m's days up to to,
// computed at computedAt and fresh for fresh, as a worker fills a month.
func fillMonth(t *testing.T, st store.Store, m dashcache.ReportKey, to string, computedAt time.Time, fresh time.Duration) {
	t.Helper()
	asked := m
	asked.To, _ = dashcache.ParseDay(to)
	data, _ := provider.NewSimulator(provider.SimConfig{MaxLatency: -1}).Query(context.Background(), asked)
	ctx := context.Background()
	l, err := st.Cache.Obtain(ctx, m, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Fill(ctx, store.NewEntry(asked, data, computedAt, time.Second, fresh), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	l.Release(ctx)
}

func month(t *testing.T, s string) dashcache.ReportKey {
	d, ok := dashcache.ParseDay(s + "-01")
	if !ok {
		t.Fatalf("bad month %q", s)
	}
	return dashcache.MonthOf(dashcache.ReportKey{Customer: "acme"}, d)
}

// TestPartitionedReads: a range is assembled from its months, as the
// simulator answers the range; a month that lacks days of the range (filled
// before they were over) is filled again, while ranges it covers are served
// from it; a month's remembered failure is the range's.
func TestPartitionedReads(t *testing.T) {
	f := newFixture(t, partitioned)
	// February, whole; March up to the 9th, filled yesterday evening and
	// stale since midnight (today is 2025-03-10).
	fillMonth(t, f.store, month(t, "2025-02"), "2025-02-28", now.Add(-3*time.Hour), 4*time.Hour)
	fillMonth(t, f.store, month(t, "2025-03"), "2025-03-09", now.Add(-40*time.Minute), 10*time.Minute)

	resp, body := f.get(t, "customer=acme&from=2025-02-20&to=2025-03-09&wait=0s")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != "stale" {
		t.Fatalf("a range both months cover: %d X-Cache %q %s", resp.StatusCode, resp.Header.Get("X-Cache"), body)
	}
	k, _ := dashcache.ParseReportKey("acme", "2025-02-20", "2025-03-09", now)
	want, _ := provider.NewSimulator(provider.SimConfig{MaxLatency: -1}).Query(context.Background(), k)
	var env struct {
		From, To string
		Data     json.RawMessage
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || string(env.Data) != string(want) || env.From != "2025-02-20" || env.To != "2025-03-09" {
		t.Fatalf("assembled %s..%s %s (%v), want the simulator's %s", env.From, env.To, env.Data, err, want)
	}
	// Stale: March's refresh is asked for, once.
	if w := f.warmed(); len(w) != 1 || w[0].key != month(t, "2025-03").String() {
		t.Errorf("refreshes asked %v, want March's", w)
	}

	// Today is not in March's entry: the reader waits for its fill.
	resp, body = f.get(t, "customer=acme&from=2025-03-01&to=2025-03-10&wait=0s")
	if resp.StatusCode != http.StatusAccepted || f.enqueued.Load() != 1 {
		t.Fatalf("a range past the month's days: %d %s, %d fills asked; want 202 and March's", resp.StatusCode, body, f.enqueued.Load())
	}
	fillMonth(t, f.store, month(t, "2025-03"), "2025-03-10", now, 5*time.Minute)
	wait.For(t, "the refilled month to be read", 5*time.Second, func() bool {
		resp, _ = f.get(t, "customer=acme&from=2025-03-01&to=2025-03-10&wait=0s")
		return resp.StatusCode == http.StatusOK
	})
	if x := resp.Header.Get("X-Cache"); x != "hit" {
		t.Errorf("after March's refill: X-Cache %q, want hit", x)
	}

	// A month whose fill failed fails the ranges that need it.
	jan := month(t, "2025-01")
	l, _ := f.store.Cache.Obtain(context.Background(), jan, time.Minute)
	if err := l.RememberFailure(context.Background(), "the BI platform failed for this report (permanent, HTTP 400)", time.Minute); err != nil {
		t.Fatal(err)
	}
	resp, body = f.get(t, "customer=acme&from=2025-01-30&to=2025-02-02&wait=0s")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "HTTP 400") {
		t.Errorf("a range over a failed month: %d %s, want 502 with its failure", resp.StatusCode, body)
	}
}

// TestPartitionedL1: an answer assembled from two months is held in L1 and
// dropped when either month is filled again.
func TestPartitionedL1(t *testing.T) {
	f := newFixture(t, partitioned)
	fillMonth(t, f.store, month(t, "2025-01"), "2025-01-31", now.Add(-time.Hour), 2*time.Hour)
	fillMonth(t, f.store, month(t, "2025-02"), "2025-02-28", now.Add(-time.Hour), 2*time.Hour)
	const q = "customer=acme&from=2025-01-15&to=2025-02-14&wait=0s"
	_, first := f.get(t, q)
	if _, again := f.get(t, q); again != first {
		t.Fatalf("read again: %s, want %s", again, first)
	}
	if !f.mini.Exists(store.EntryKey(month(t, "2025-01"))) {
		t.Fatal("January is not in Redis")
	}
	f.mini.Del(store.EntryKey(month(t, "2025-01"))) // an L1 hit needs no Redis
	if resp, again := f.get(t, q); resp.StatusCode != http.StatusOK || again != first {
		t.Fatalf("with January gone from Redis, no L1 hit: %d %s", resp.StatusCode, again)
	}
	// February refilled (later, the notification): the assembled answer
	// in L1 is dropped, and January is missing again.
	fillMonth(t, f.store, month(t, "2025-02"), "2025-02-28", now, 2*time.Hour)
	wait.For(t, "the answer to be dropped from L1", 5*time.Second, func() bool {
		resp, _ := f.get(t, q)
		return resp.StatusCode == http.StatusAccepted
	})
}
