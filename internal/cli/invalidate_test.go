package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// invalidationRange is the ith of each customer's 20 cached ranges: they
// start on successive days and span 4 to 10 days.
func invalidationRange(i int) (from, to string) { return day(i), day(i + 3 + i%7) }

// TestInvalidation runs the invalidation scenario on a Redis server.
func TestInvalidation(t *testing.T) {
	url, rdb := redistest.URLClient(t)
	invalidation(t, map[string]string{"DASHCACHE_REDIS_URL": url}, rdb)
}

// TestInvalidationCluster runs the invalidation scenario on a 3-master
// Redis Cluster: the index, the reads and the entries are spread over the
// masters, and the answers are the same.
func TestInvalidationCluster(t *testing.T) {
	addrs := redistest.Cluster(t)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	invalidation(t, map[string]string{"DASHCACHE_REDIS_CLUSTER_ADDRS": strings.Join(addrs, ",")}, cc)
}

// invalidation: 3 customers x 20 cached ranges, warmed; half of c1's
// reports are read. Invalidating c1's data of one day makes exactly c1's
// reports covering that day stale; of those, the ones read are refreshed at
// once (BI calls: that many), while readers hammering them get 200 every
// time; the others are served stale on their next read, which refreshes
// them. The other customers and c1's other ranges cost no BI call and stay
// hits.
func invalidation(t *testing.T, redisEnv map[string]string, rdb redis.UniversalClient) {
	const customers, ranges, changed = 3, 20, 10 // the day changed: day(10)
	bi := newBIServer(t, 200*time.Millisecond, "")
	env := map[string]string{
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "100",
	}
	for k, v := range redisEnv {
		env[k] = v
	}
	startRole(t, "worker", env)
	startRole(t, "worker", env)
	api := startRole(t, "api", env)
	st := store.New(rdb)
	ctx := context.Background()

	// The expected sets, computed here, not by dashcache.
	type rng struct{ from, to string }
	var overlapping, read, notRead []rng // of c1
	for i := range ranges {
		from, to := invalidationRange(i)
		r := rng{from, to}
		if from <= day(changed) && day(changed) <= to {
			overlapping = append(overlapping, r)
			if i%2 == 0 {
				read = append(read, r)
			} else {
				notRead = append(notRead, r)
			}
		}
	}
	if len(read) == 0 || len(notRead) == 0 {
		t.Fatalf("the scenario needs read and unread overlapping ranges: %v, %v", read, notRead)
	}

	// Warm every report (POST /v1/warm, no read), and wait for the index to
	// hold them all.
	for i := range ranges {
		from, to := invalidationRange(i)
		body := fmt.Sprintf(`{"customers":["c0","c1","c2"],"from":%q,"to":%q}`, from, to)
		if status, out := post(t, api, "/v1/warm", body); status != http.StatusAccepted {
			t.Fatalf("warm: %d %s", status, out)
		}
	}
	wait.For(t, "the 60 reports to be filled and indexed", 30*time.Second, func() bool {
		for c := range customers {
			if keys, err := st.Index.Cached(ctx, fmt.Sprintf("c%d", c), time.Now()); err != nil || len(keys) != ranges {
				return false
			}
		}
		return true
	})
	for c := range customers {
		if calls, _ := bi.figures(fmt.Sprintf("c%d", c)); calls != ranges {
			t.Fatalf("c%d: %d BI calls to warm %d reports", c, calls, ranges)
		}
	}

	// c1's even ranges are read (hits); the odd ones are not.
	for i := 0; i < ranges; i += 2 {
		from, to := invalidationRange(i)
		if xc := readCache(t, api, "c1", from, to); xc != "hit" {
			t.Fatalf("c1 %s..%s: X-Cache %q before the invalidation, want hit", from, to, xc)
		}
	}

	// Readers hammer the overlapping reports that were read, from before
	// the invalidation until their refreshes have landed.
	stop := make(chan struct{})
	var hammered sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{} // X-Cache of the hammering reads
	for _, r := range read {
		hammered.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				xc := readCache(t, api, "c1", r.from, r.to)
				mu.Lock()
				seen[xc]++
				mu.Unlock()
			}
		})
	}

	invalidatedAt := time.Now()
	status, out := post(t, api, "/v1/invalidate", fmt.Sprintf(`{"customers":["c1"],"from":%q,"to":%q}`, day(changed), day(changed)))
	var res dashcache.Invalidation
	if status != http.StatusOK || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("invalidate: %d %s", status, out)
	}
	want := dashcache.Invalidation{Matched: len(overlapping), MarkedStale: len(overlapping), Refreshed: len(read), APIs: 1}
	if res != want {
		t.Fatalf("invalidate answered %+v, want %+v", res, want)
	}
	// The read ones are refreshed: one BI call each.
	wait.For(t, "the read reports to be refreshed", 30*time.Second, func() bool {
		for _, r := range read {
			if !computedSince(t, st, "c1", r.from, r.to, invalidatedAt) {
				return false
			}
		}
		return true
	})
	close(stop)
	hammered.Wait()
	// Nothing else was called for: had the invalidation queued a refresh of
	// an unread report too, that task went into the queues with those of
	// the read ones; once they are idle it has run, its BI call is counted
	// and its report shows computed since.
	waitIdle(t, rdb)
	if calls, _ := bi.figures("c1"); calls != ranges+len(read) {
		t.Errorf("c1: %d BI calls after the refreshes, want %d + %d refreshed", calls, ranges, len(read))
	}
	reads := 0
	for _, n := range seen {
		reads += n
	}
	if seen["hit"]+seen["stale"] == 0 || seen["hit"]+seen["stale"] != reads {
		t.Errorf("hammering readers got X-Cache %v, want only hit and stale (a 200 each)", seen)
	}
	// The unread ones were only marked: stale on their next read, which
	// refreshes them.
	for _, r := range notRead {
		if computedSince(t, st, "c1", r.from, r.to, invalidatedAt) {
			t.Errorf("c1 %s..%s was refreshed, but nobody had read it", r.from, r.to)
		}
		if xc := readCache(t, api, "c1", r.from, r.to); xc != "stale" {
			t.Errorf("c1 %s..%s: X-Cache %q after the invalidation, want stale", r.from, r.to, xc)
		}
	}
	wait.For(t, "the reports read stale to be refreshed", 30*time.Second, func() bool {
		for _, r := range notRead {
			if !computedSince(t, st, "c1", r.from, r.to, invalidatedAt) {
				return false
			}
		}
		return true
	})

	// Every other report is still a hit, and cost nothing.
	for c := range customers {
		for i := range ranges {
			from, to := invalidationRange(i)
			customer := fmt.Sprintf("c%d", c)
			if customer == "c1" && slices.Contains(overlapping, rng{from, to}) {
				continue
			}
			if xc := readCache(t, api, customer, from, to); xc != "hit" {
				t.Errorf("%s %s..%s: X-Cache %q, want hit", customer, from, to, xc)
			}
		}
	}
	waitIdle(t, rdb)
	for c, want := range []int{ranges, ranges + len(overlapping), ranges} {
		if calls, _ := bi.figures(fmt.Sprintf("c%d", c)); calls != want {
			t.Errorf("c%d: %d BI calls in all, want %d", c, calls, want)
		}
	}
	t.Logf("invalidated c1 on %s: %+v; hammering reads %v; BI calls %d", day(changed), res, seen, bi.calls.Load())
}

// readCache reads a report (waiting for it if need be), fails the test
// unless it is a 200, and returns its X-Cache.
func readCache(t *testing.T, addr, customer, from, to string) string {
	r := get(t, addr, customer, from, to, "20s")
	if r.status != http.StatusOK {
		t.Errorf("%s %s..%s: %d, want 200", customer, from, to, r.status)
	}
	return r.xcache
}

// post sends a JSON body to an admin path (the test runs on loopback, where
// no token is needed) and returns the status and body.
func post(t *testing.T, addr, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// computedSince reports whether the report's entry was computed at or
// after since.
func computedSince(t *testing.T, st store.Store, customer, from, to string, since time.Time) bool {
	t.Helper()
	k, err := dashcache.ParseReportKey(customer, from, to, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.Cache.Get(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	e, err := store.ParseEntry(raw)
	return err == nil && !e.ComputedAt.Before(since.Truncate(time.Millisecond))
}

// waitIdle waits, up to 30 s, for both queues on rdb to hold no task
// (pending, active, scheduled, retried or archived): every task enqueued
// before it was called has run.
func waitIdle(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	insp := asynq.NewInspectorFromRedisClient(rdb)
	wait.For(t, "the queues to be idle", 30*time.Second, func() bool {
		for _, q := range []string{jobs.QueueInteractive, jobs.QueueWarming} {
			info, err := insp.GetQueueInfo(q)
			if err != nil && !strings.Contains(err.Error(), "does not exist") {
				return false
			}
			if err == nil && info.Size > 0 {
				return false
			}
		}
		return true
	})
}

// TestInvalidateCommand: dashcache invalidate marks the reports covering
// the changed days stale, queues a refresh of those read lately, and prints
// the counts; bad arguments are a usage error.
func TestInvalidateCommand(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	st, ctx, now := store.New(rdb), context.Background(), time.Now()
	var keys []dashcache.ReportKey
	for _, r := range [][2]string{{"2025-01-01", "2025-01-31"}, {"2025-01-15", "2025-02-15"}, {"2025-02-01", "2025-02-28"}} {
		k, _ := dashcache.ParseReportKey("acme", r[0], r[1], now)
		l, err := st.Cache.Obtain(ctx, k, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Fill(ctx, store.NewEntry(k, []byte(`1`), now, time.Second, time.Hour), 2*time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := st.Index.IndexFill(ctx, k, now, now.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	if err := st.Index.RecordReads(ctx, map[dashcache.ReportKey]time.Time{keys[0]: now, keys[2]: now}); err != nil {
		t.Fatal(err)
	}
	env := func(k string) string { return map[string]string{"DASHCACHE_REDIS_URL": redisURL}[k] }
	invalidate := func(args ...string) (string, error) {
		var out strings.Builder
		err := Run(ctx, append([]string{"invalidate"}, args...), env, &out, io.Discard)
		return out.String(), err
	}
	// January 20 is in the first two ranges; the first was read.
	out, err := invalidate("--customers", "acme", "--from", "2025-01-20")
	if err != nil || out != "2 matched, 2 marked stale, 1 refreshed now (reads of 0 API processes, 0 did not answer)\n" {
		t.Fatalf("invalidate: %v, output %q", err, out)
	}
	insp := asynq.NewInspectorFromRedisClient(rdb)
	if info, err := insp.GetTaskInfo(jobs.QueueWarming, keys[0].TaskID()); err != nil || info.State != asynq.TaskStatePending {
		t.Errorf("the refresh of the read report: %+v, %v; want a pending fill task", info, err)
	}
	if q, err := insp.GetQueueInfo(jobs.QueueWarming); err != nil || q.Size != 1 {
		t.Errorf("warming queue %+v, %v; want the one refresh", q, err)
	}
	out, err = invalidate("--customers", "*", "--from", "2025-01-01", "--to", "2025-03-01")
	// The first two are stale already; the third is marked. The read ones,
	// the first (whose refresh is still queued) and the third, are refreshed.
	if err != nil || out != "3 matched, 1 marked stale, 2 refreshed now (reads of 0 API processes, 0 did not answer)\n" {
		t.Fatalf("invalidate every customer: %v, output %q", err, out)
	}
	if q, err := insp.GetQueueInfo(jobs.QueueWarming); err != nil || q.Size != 2 {
		t.Errorf("warming queue %+v, %v; want the two refreshes, one each", q, err)
	}
	for _, bad := range [][]string{
		{},
		{"--customers", "acme"},
		{"--from", "2025-01-01"},
		{"--customers", "acme,*", "--from", "2025-01-01"},
		{"--customers", "ac|me", "--from", "2025-01-01"},
		{"--customers", "acme", "--from", "2025-02-01", "--to", "2025-01-01"},
		{"--customers", "acme", "--from", "2025-01-01", "extra"},
	} {
		if _, err := invalidate(bad...); err != ErrUsage {
			t.Errorf("invalidate %q: %v, want a usage error", bad, err)
		}
	}
}

// TestInvalidationDuringFill: a report whose BI call is running when its
// data is invalidated is marked stale as soon as it is stored (its answer
// may predate the change): served stale while one refresh runs, then
// fresh. Two BI calls in all.
func TestInvalidationDuringFill(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	bi := newBIServer(t, time.Second, "acme")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redisURL,
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	startRole(t, "worker", env)
	api := startRole(t, "api", env)
	st := store.New(rdb)
	k, _ := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", time.Now())
	entry := func() (store.Entry, bool) {
		raw, err := st.Cache.Get(context.Background(), k)
		if err != nil {
			t.Fatal(err)
		}
		e, err := store.ParseEntry(raw)
		return e, err == nil
	}

	if status, out := post(t, api, "/v1/warm", `{"customers":["acme"],"from":"2025-01-01","to":"2025-01-31"}`); status != http.StatusAccepted {
		t.Fatalf("warm: %d %s", status, out)
	}
	bi.waitFirstCall(t)
	status, out := post(t, api, "/v1/invalidate", `{"customers":["acme"],"from":"2025-01-20","to":"2025-01-20"}`)
	if status != http.StatusOK || !strings.Contains(out, `"matched":0`) {
		t.Fatalf("invalidate during the fill: %d %s; want nothing cached yet", status, out)
	}
	// The fill lands, and is marked stale right after.
	wait.For(t, "the fill that ran across the invalidation to land stale", 30*time.Second, func() bool {
		e, ok := entry()
		return ok && !e.Fresh(time.Now())
	})
	if xc := readCache(t, api, "acme", "2025-01-01", "2025-01-31"); xc != "stale" {
		t.Fatalf("read after the fill: X-Cache %q, want stale", xc)
	}
	// The API serves the refreshed report once the refresh's notification
	// has reached it (its L1 holds the stale one until then), not as soon
	// as Redis holds it.
	wait.For(t, "the refresh to be served", 30*time.Second, func() bool {
		return readCache(t, api, "acme", "2025-01-01", "2025-01-31") == "hit"
	})
	if e, ok := entry(); !ok || !e.Fresh(time.Now()) {
		t.Errorf("the report served as a hit is not fresh in Redis")
	}
	// No third call: the refreshes asked for (by the stale reads, in their
	// background) were enqueued before the refreshed report was served;
	// once the queues are idle each has run, and a call it made is counted.
	waitIdle(t, rdb)
	if calls := bi.calls.Load(); calls != 2 {
		t.Errorf("%d BI calls, want 2: the fill across the change and its refresh", calls)
	}
}
