package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/provider"
	"github.com/redis/go-redis/v9"
)

// monthBI is a BI platform of the provider contract that answers as the
// simulator does, plus what a test added to some days' revenue (a change
// of the data), and counts the queries it answers, by range.
type monthBI struct {
	*httptest.Server
	sim     *provider.Simulator
	latency time.Duration

	mu    sync.Mutex
	calls int
	asked map[string]int            // by canonical key
	bump  map[string]map[string]int // cents added: by customer, by date
}

func newMonthBI(t *testing.T, latency time.Duration) *monthBI {
	b := &monthBI{sim: provider.NewSimulator(provider.SimConfig{MaxLatency: -1}), latency: latency,
		asked: map[string]int{}, bump: map[string]map[string]int{}}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct{ Customer, From, To string }
		if r.URL.Path != "/query" || json.NewDecoder(r.Body).Decode(&q) != nil {
			http.Error(w, `{"error":"not a query"}`, http.StatusBadRequest)
			return
		}
		k, err := dashcache.ParseCanonical(q.Customer + "|" + q.From + "|" + q.To)
		if err != nil {
			http.Error(w, `{"error":"bad key"}`, http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.calls++
		b.asked[k.String()]++
		b.mu.Unlock()
		time.Sleep(b.latency)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b.answer(t, k))
	}))
	t.Cleanup(b.Close)
	return b
}

// answer is the platform's answer for k: the simulator's, with the bumps.
func (b *monthBI) answer(t testing.TB, k dashcache.ReportKey) []byte {
	data, err := b.sim.Query(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.bump[k.Customer]) == 0 {
		return data
	}
	var r struct {
		Customer string `json:"customer"`
		From     string `json:"from"`
		To       string `json:"to"`
		Days     int    `json:"days"`
		Revenue  int64  `json:"revenue"`
		Orders   int64  `json:"orders"`
		Series   []struct {
			Date    string `json:"date"`
			Revenue int64  `json:"revenue"`
			Orders  int64  `json:"orders"`
		} `json:"series"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	for i, d := range r.Series {
		add := int64(b.bump[k.Customer][d.Date])
		r.Series[i].Revenue += add
		r.Revenue += add
	}
	out, _ := json.Marshal(r)
	return out
}

func (b *monthBI) counted() (calls int, asked map[string]int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	asked = map[string]int{}
	for k, n := range b.asked {
		asked[k] = n
	}
	return b.calls, asked
}

// partitionEnv is the settings of a fleet on the BI platform bi, with the
// default report partitioned by month unless partition is "off", on a
// Redis database of its own (rdb).
func partitionEnv(t *testing.T, bi *monthBI, partition string) (map[string]string, *redis.Client) {
	redisURL, rdb := redistest.URLClient(t)
	return map[string]string{
		"DASHCACHE_REDIS_URL":     redisURL,
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "200",
		"DASHCACHE_PARTITION":     partition,
	}, rdb
}

// dataOf returns the data of an answer of the read API: the BI platform's
// answer, as it was stored or assembled.
func dataOf(t testing.TB, body string) string {
	t.Helper()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil || env.Data == nil {
		t.Fatalf("not a report: %q", body)
	}
	return string(env.Data)
}

// TestPartitionDatePickers: a date picker's 100 distinct ranges within the
// last 12 months, read one after another with nothing cached, cost one BI
// call per month they touch (at most 13), against one per range without
// partitions; every answer equals the platform's own answer for its range,
// byte for byte (the exactness of the assembly: 100 ranges); read again,
// they cost nothing.
func TestPartitionDatePickers(t *testing.T) {
	today := dashcache.DayOf(time.Now().UTC())
	rng := rand.New(rand.NewPCG(17, 5))
	type rng2 struct{ from, to dashcache.Day }
	seen := map[rng2]bool{}
	var ranges []rng2
	months := map[dashcache.ReportKey]bool{}
	for len(ranges) < 100 {
		from := today - dashcache.Day(rng.IntN(365))
		r := rng2{from, from + dashcache.Day(rng.IntN(int(today-from)+1))}
		if seen[r] {
			continue
		}
		seen[r] = true
		ranges = append(ranges, r)
		for _, m := range dashcache.Months(dashcache.ReportKey{Customer: "acme", From: r.from, To: r.to}) {
			months[m] = true
		}
	}
	for _, partition := range []string{"month", "off"} {
		bi := newMonthBI(t, 0)
		env, _ := partitionEnv(t, bi, partition)
		startRole(t, "worker", env)
		api := startRole(t, "api", env)
		for _, r := range ranges {
			got := get(t, api, "acme", r.from.String(), r.to.String(), "30s")
			if got.status != http.StatusOK {
				t.Fatalf("%s: %s..%s: %d %s", partition, r.from, r.to, got.status, got.body)
			}
			want := bi.answer(t, dashcache.ReportKey{Customer: "acme", From: r.from, To: r.to})
			if data := dataOf(t, got.body); data != string(want) {
				t.Fatalf("%s: %s..%s: the answer's data\n%s\nis not the platform's own answer for the range\n%s", partition, r.from, r.to, data, want)
			}
		}
		calls, _ := bi.counted()
		t.Logf("partition=%s: %d distinct ranges within the last 12 months (%d months) cost %d BI calls", partition, len(ranges), len(months), calls)
		want := len(months)
		if partition == "off" {
			want = len(ranges)
		}
		if calls != want || partition == "month" && calls > 13 {
			t.Errorf("partition=%s: %d BI calls, want %d", partition, calls, want)
		}
		for _, r := range ranges {
			if got := get(t, api, "acme", r.from.String(), r.to.String(), "30s"); got.status != http.StatusOK || got.xcache != "hit" {
				t.Fatalf("%s: read again, %s..%s: %d %s", partition, r.from, r.to, got.status, got.xcache)
			}
		}
		if again, _ := bi.counted(); again != calls {
			t.Errorf("partition=%s: read again, the ranges cost %d more BI calls, want 0", partition, again-calls)
		}
	}
}

// TestPartitionStampede: 300 concurrent reads of 30 overlapping ranges,
// across 3 API servers and 2 workers on a real Redis, fetch each month
// once (counted at the BI server), and every reader gets its range's
// answer.
func TestPartitionStampede(t *testing.T) {
	const apis, workers, readers = 3, 2, 300
	bi := newMonthBI(t, time.Second)
	env, _ := partitionEnv(t, bi, "month")
	for range workers {
		startRole(t, "worker", env)
	}
	var addrs []string
	for range apis {
		addrs = append(addrs, startRole(t, "api", env))
	}
	start := dashcache.CivilDay(2025, time.January, 10)
	type rng2 struct{ from, to dashcache.Day }
	var ranges []rng2
	months := map[string]bool{}
	for i := range 30 {
		r := rng2{start + dashcache.Day(i*4), start + dashcache.Day(i*4+20+i*3)}
		ranges = append(ranges, r)
		for _, m := range dashcache.Months(dashcache.ReportKey{Customer: "acme", From: r.from, To: r.to}) {
			months[m.String()] = true
		}
	}
	results := make([]read, readers)
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			r := ranges[i%len(ranges)]
			<-release
			results[i] = get(t, addrs[i%apis], "acme", r.from.String(), r.to.String(), "30s")
		})
	}
	close(release)
	wg.Wait()
	for i, got := range results {
		r := ranges[i%len(ranges)]
		if got.status != http.StatusOK {
			t.Fatalf("reader %d of %s..%s: %d %s", i, r.from, r.to, got.status, got.body)
		}
		if want := bi.answer(t, dashcache.ReportKey{Customer: "acme", From: r.from, To: r.to}); dataOf(t, got.body) != string(want) {
			t.Fatalf("reader %d of %s..%s got another answer than the platform's for the range", i, r.from, r.to)
		}
	}
	calls, asked := bi.counted()
	for key, n := range asked {
		if n != 1 || !months[key] {
			t.Errorf("the BI server was asked %s %d times; want each month of the ranges once", key, n)
		}
	}
	t.Logf("%d readers of %d overlapping ranges over %d API servers and %d workers: %d BI calls for %d months", readers, len(ranges), apis, workers, calls, len(months))
	if calls != len(months) {
		t.Errorf("%d BI calls, want %d (one per month)", calls, len(months))
	}
}

// TestPartitionNight: after a backfill of the 12 closed months before this
// one, warming the 6 presets for 20 customers costs one BI call per
// customer (the current month), and every preset's read is then a hit.
func TestPartitionNight(t *testing.T) {
	const customers = 20
	bi := newMonthBI(t, 0)
	env, rdb := partitionEnv(t, bi, "month")
	startRole(t, "worker", env)
	api := startRole(t, "api", env)
	now := time.Now().UTC()
	thisMonth := dashcache.MonthOf(dashcache.ReportKey{}, dashcache.DayOf(now))
	y, m, _ := thisMonth.From.Date()
	backfill := dashcache.ReportKey{From: dashcache.CivilDay(y, m-12, 1), To: thisMonth.From - 1}
	var names []string
	for i := range customers {
		names = append(names, fmt.Sprintf("c%02d", i))
	}
	list, _ := json.Marshal(names)
	if status, out := post(t, api, "/v1/warm", fmt.Sprintf(`{"customers":%s,"from":%q,"to":%q}`, list, backfill.From, backfill.To)); status != http.StatusAccepted {
		t.Fatalf("backfill: %d %s", status, out)
	}
	backfilled := customers * 12
	wait.For(t, "the backfill's BI calls", 60*time.Second, func() bool { calls, _ := bi.counted(); return calls >= backfilled })
	waitIdle(t, rdb)

	presets, _ := json.Marshal(dashcache.PresetNames)
	if status, out := post(t, api, "/v1/warm", fmt.Sprintf(`{"customers":%s,"ranges":%s}`, list, presets)); status != http.StatusAccepted {
		t.Fatalf("the night's warming: %d %s", status, out)
	}
	wait.For(t, "the night's BI calls", 60*time.Second, func() bool { calls, _ := bi.counted(); return calls >= backfilled+customers })
	waitIdle(t, rdb)
	for _, c := range names {
		for _, preset := range dashcache.PresetNames {
			from, to, err := dashcache.PresetRange(preset, now)
			if err != nil {
				t.Fatal(err)
			}
			if got := get(t, api, c, from.String(), to.String(), "0s"); got.status != http.StatusOK || got.xcache != "hit" {
				t.Fatalf("%s over %s (%s..%s): %d X-Cache %q, want a hit", c, preset, from, to, got.status, got.xcache)
			}
		}
	}
	calls, asked := bi.counted()
	t.Logf("backfill of 12 months for %d customers: %d BI calls; the night's 6 presets for each: %d", customers, backfilled, calls-backfilled)
	if calls != backfilled+customers {
		t.Errorf("%d BI calls, want %d for the backfill and %d for the night", calls, backfilled, customers)
	}
	for _, c := range names {
		if m := dashcache.MonthOf(dashcache.ReportKey{Customer: c}, thisMonth.From); asked[dashcache.ReportKey{Customer: c, From: m.From, To: dashcache.DayOf(now)}.String()] != 1 {
			t.Errorf("%s: the current month was not asked once, up to today: %v", c, asked)
		}
	}
}

// TestPartitionChange: an invalidation of one day of one customer
// refreshes the one month that holds it (one BI call), and every range
// that covers the day then serves the new numbers, the others the same.
func TestPartitionChange(t *testing.T) {
	bi := newMonthBI(t, 0)
	env, _ := partitionEnv(t, bi, "month")
	startRole(t, "worker", env)
	api := startRole(t, "api", env)
	const changed = "2025-06-10"
	covering := [][2]string{{"2025-06-01", "2025-06-30"}, {"2025-06-05", "2025-06-15"}, {"2025-05-20", "2025-06-10"}, {"2025-06-10", "2025-07-03"}}
	others := [][2]string{{"2025-06-11", "2025-06-20"}, {"2025-05-01", "2025-05-31"}}
	all := append(append([][2]string{}, covering...), others...)
	revenue := func(r [2]string) (int64, string) {
		got := get(t, api, "acme", r[0], r[1], "30s")
		if got.status != http.StatusOK {
			t.Fatalf("%s..%s: %d %s", r[0], r[1], got.status, got.body)
		}
		var data struct{ Revenue int64 }
		json.Unmarshal([]byte(dataOf(t, got.body)), &data)
		return data.Revenue, got.xcache
	}
	before := map[[2]string]int64{}
	for _, r := range all {
		before[r], _ = revenue(r)
	}
	filled, _ := bi.counted() // May, June, July
	if filled != 3 {
		t.Fatalf("the ranges cost %d BI calls, want 3 (their months)", filled)
	}

	const bump = 12345
	bi.mu.Lock()
	bi.bump["acme"] = map[string]int{changed: bump}
	bi.mu.Unlock()
	status, out := post(t, api, "/v1/invalidate", `{"customers":["acme"],"from":"`+changed+`","to":"`+changed+`"}`)
	if status != http.StatusOK || !strings.Contains(out, `"refreshed":1`) {
		t.Fatalf("invalidation: %d %s; want the one month refreshed", status, out)
	}
	june := dashcache.ReportKey{Customer: "acme", From: dashcache.CivilDay(2025, time.June, 1), To: dashcache.CivilDay(2025, time.June, 30)}
	wait.For(t, "June to be refilled with the change", 30*time.Second, func() bool {
		v, xcache := revenue(covering[0])
		return v == before[covering[0]]+bump && xcache == "hit"
	})
	for _, r := range covering {
		if v, xcache := revenue(r); v != before[r]+bump || xcache != "hit" {
			t.Errorf("%s..%s covers %s: revenue %d (%s), want %d, a hit", r[0], r[1], changed, v, xcache, before[r]+bump)
		}
	}
	for _, r := range others {
		if v, _ := revenue(r); v != before[r] {
			t.Errorf("%s..%s does not cover %s: revenue %d, want %d as before", r[0], r[1], changed, v, before[r])
		}
	}
	calls, asked := bi.counted()
	t.Logf("a change of one day: %d BI call(s), %s asked %d times in all", calls-filled, june, asked[june.String()])
	if calls != filled+1 || asked[june.String()] != 2 {
		t.Errorf("the change cost %d BI calls (June asked %d times in all), want 1, for June", calls-filled, asked[june.String()])
	}
}

// TestPartitionSetting: DASHCACHE_PARTITION is month or off, and refused
// where there is no default report to partition.
func TestPartitionSetting(t *testing.T) {
	catalogue := filepath.Join(t.TempDir(), "reports.yaml")
	if err := os.WriteFile(catalogue, []byte("backends:\n  crm: {type: http, url: \"http://127.0.0.1:1\"}\nreports:\n  deals: {backend: crm}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string // "" for none
	}{
		{map[string]string{"DASHCACHE_PARTITION": "month"}, ""},
		{map[string]string{"DASHCACHE_PARTITION": "off"}, ""},
		{map[string]string{"DASHCACHE_PARTITION": "weekly"}, `DASHCACHE_PARTITION: want month (the default report cached by calendar month, assembled for every range) or off, got "weekly"`},
		{map[string]string{"DASHCACHE_PARTITION": "month", "DASHCACHE_REPORTS_FILE": catalogue}, "DASHCACHE_PARTITION: partitions the default report, and there is none"},
		{map[string]string{"DASHCACHE_PARTITION": "month", "DASHCACHE_REPORTS_FILE": catalogue, "DASHCACHE_PROVIDER_URL": "http://bi.internal"}, ""},
	} {
		_, err := LoadConfig("all", func(k string) string { return tc.env[k] })
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
}
