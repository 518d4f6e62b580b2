package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// TestOpenRedisSentinel: DASHCACHE_REDIS_SENTINEL_* give a failover client
// with the data's password and database and the single-node client's
// timeouts; the log names the sentinels and the primary's name, never a
// password.
func TestOpenRedisSentinel(t *testing.T) {
	var logs strings.Builder
	s := Sentinel{Addrs: []string{"127.0.0.1:26379", "127.0.0.1:26380"}, Master: "mymaster",
		SentinelPassword: testSecret + "-sentinel", Password: testSecret, DB: 3}
	rdb, closeRedis, err := openRedis(Config{RedisSentinel: s}, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	defer closeRedis()
	c, ok := rdb.(*redis.Client)
	if !ok {
		t.Fatalf("openRedis returned %T, want the *redis.Client of redis.NewFailoverClient", rdb)
	}
	o := c.Options()
	if o.Password != testSecret || o.DB != 3 || o.MaxRetries != 1 {
		t.Errorf("password %q db %d retries %d, want %q 3 1", o.Password, o.DB, o.MaxRetries, testSecret)
	}
	if o.DialTimeout != 2*time.Second || o.ReadTimeout != 2*time.Second || o.WriteTimeout != 2*time.Second || o.PoolTimeout != 3*time.Second {
		t.Errorf("timeouts dial %s read %s write %s pool %s, want 2s 2s 2s 3s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout)
	}
	if !strings.Contains(logs.String(), "127.0.0.1:26380") || !strings.Contains(logs.String(), "mymaster") {
		t.Errorf("log does not name the sentinels and the primary's name: %s", logs.String())
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Errorf("log shows a password: %s", logs.String())
	}
}

// TestSentinelFailover: API and worker configured with the sentinels alone
// (DASHCACHE_REDIS_SENTINEL_ADDRS, _MASTER; the reports in database 1 of
// the same primary through DASHCACHE_CACHE_REDIS_SENTINEL_*), under a
// steady load of hits and misses; the primary is killed (or, in a planned
// switchover, SENTINEL FAILOVER demotes it, also with passwords on the data
// and on the sentinels), the sentinels promote the replica and announce it
// (+switch-master), and misses are served again within 10 s of that,
// without a restart; every report filled after it is on the new primary.
func TestSentinelFailover(t *testing.T) {
	type failure func(t *testing.T, primary *redistest.Process, sentinels *redistest.SentinelGroup)
	kill := func(_ *testing.T, primary *redistest.Process, _ *redistest.SentinelGroup) { primary.Kill() }
	failover := func(t *testing.T, _ *redistest.Process, sentinels *redistest.SentinelGroup) { sentinels.Failover(t) }
	for _, c := range []struct {
		name                           string
		fail                           failure
		dataPassword, sentinelPassword string // "": none
	}{
		{"primary killed", kill, "", ""},
		{"SENTINEL FAILOVER", failover, "", ""},
		{"SENTINEL FAILOVER with passwords", failover, testSecret + "-data", testSecret + "-sentinel"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var args []string
			if c.dataPassword != "" {
				args = []string{"--requirepass", c.dataPassword, "--masterauth", c.dataPassword}
			}
			primary := redistest.Server(t, args...)
			replica := redistest.Replica(t, primary)
			sentinels := redistest.Sentinels(t, primary, 3, 1, c.sentinelPassword)
			bi := newBIServer(t, 0, "")
			env := map[string]string{
				"DASHCACHE_REDIS_PASSWORD":                c.dataPassword,
				"DASHCACHE_REDIS_SENTINEL_PASSWORD":       c.sentinelPassword,
				"DASHCACHE_CACHE_REDIS_PASSWORD":          c.dataPassword,
				"DASHCACHE_CACHE_REDIS_SENTINEL_PASSWORD": c.sentinelPassword,
				"DASHCACHE_REDIS_SENTINEL_ADDRS":          strings.Join(sentinels.Addrs, ","),
				"DASHCACHE_REDIS_SENTINEL_MASTER":         redistest.SentinelMaster,
				// The reports in a database of their own, as they would be on a
				// Redis of their own.
				"DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS":  strings.Join(sentinels.Addrs, ","),
				"DASHCACHE_CACHE_REDIS_SENTINEL_MASTER": redistest.SentinelMaster,
				"DASHCACHE_CACHE_REDIS_DB":              "1",
				"DASHCACHE_LISTEN":                      "127.0.0.1:0",
				"DASHCACHE_PROVIDER_URL":                bi.URL,
				"DASHCACHE_PROVIDER_RATE":               "100",
			}
			startRole(t, "worker", env)
			addr := startRole(t, "api", env)
			l := startLoad(t, readClient, addr, bi.calls.Load)

			switchedc := sentinels.Switched(t)
			c.fail(t, primary, sentinels)
			failed := time.Now()
			var switched time.Time
			select {
			case switched = <-switchedc:
			case <-time.After(30 * time.Second):
				t.Fatal("no +switch-master from the sentinels within 30 s")
			}
			if p := sentinels.Primary(); p != replica.Addr {
				t.Fatalf("the sentinels switched to %s, want the replica %s", p, replica.Addr)
			}
			f := l.recover(t, switched)
			t.Logf("Sentinel, %s: +switch-master %s after; misses served again %s after it; "+
				"reads refused %d of %d (misses %d of %d); BI calls %d for %d misses served",
				c.name, switched.Sub(failed).Round(time.Millisecond), f.recovered.Round(time.Millisecond),
				f.refused, f.reads, f.missesRefused, f.misses, f.biCalls, f.served)
			if f.recovered > 10*time.Second {
				t.Errorf("misses served again %s after the switch, want within 10 s", f.recovered)
			}
			// A fill begun as the processes hear the switch may still go to
			// the old primary, and be lost with it: those of reads begun
			// 200 ms or more after it are checked.
			l.checkKept(t, &redis.Options{Addr: replica.Addr, Password: replica.Password, DB: 1}, switched.Add(200*time.Millisecond))
		})
	}
}

// TestSwitchoverBehindMovedAddress: a plain DASHCACHE_REDIS_URL naming an
// address that moves (a proxy here; a DNS name or a virtual IP elsewhere):
// the replica is promoted, the address moved to it and the old primary
// demoted to a replica of it, while the processes hold connections to the
// old one, which answers LOADING for about 4 s while it loads the new
// primary's data, then READONLY to writes. Misses are served again within
// 3 s, without a restart, and every report filled after the switchover is
// on the new primary.
func TestSwitchoverBehindMovedAddress(t *testing.T) {
	old := redistest.Server(t)
	next := redistest.Replica(t, old)
	slowLoad(t, old, next)
	proxy := redistest.NewProxy(t, old.Addr)
	bi := newBIServer(t, 0, "")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     "redis://" + proxy.Addr + "/0",
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "100",
	}
	startRole(t, "worker", env)
	addr := startRole(t, "api", env)
	l := startLoad(t, readClient, addr, bi.calls.Load)

	next.ReplicaOf(nil)
	proxy.MoveTo(next.Addr)
	splitWrite(t, old)
	old.ReplicaOf(next)
	switched := time.Now()
	f := l.recover(t, switched)
	t.Logf("switchover behind a moved address (old primary loading ~4 s): misses served again %s after it; "+
		"reads refused %d of %d (misses %d of %d); BI calls %d for %d misses served",
		f.recovered.Round(time.Millisecond), f.refused, f.reads, f.missesRefused, f.misses, f.biCalls, f.served)
	if f.recovered > 3*time.Second {
		t.Errorf("misses served again %s after the switchover, want within 3 s (the old primary loads for 4 s)", f.recovered)
	}
	l.checkKept(t, &redis.Options{Addr: next.Addr}, switched)
}

// splitWrite writes to old, a primary promoted away, as a process still
// connected to it may: it cannot then resync from where it was, and loads
// the new primary's data in full once demoted.
func splitWrite(t *testing.T, old *redistest.Process) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: old.Addr, DB: 15})
	defer rdb.Close()
	if err := rdb.Set(context.Background(), "split", "write", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// slowLoad makes old, once it replicates next, load next's data for about
// 4 s, answering LOADING meanwhile (as a demoted primary does with a large
// dataset): 20,000 keys in database 15, each loaded in 200 µs, with events
// served between every kilobyte read; next sends its data at once.
func slowLoad(t *testing.T, old, next *redistest.Process) {
	t.Helper()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: old.Addr, DB: 15})
	defer rdb.Close()
	pipe := rdb.Pipeline()
	for i := range 20_000 {
		pipe.Set(ctx, fmt.Sprintf("filler:%d", i), "x", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p          *redistest.Process
		key, value string
	}{
		{old, "key-load-delay", "200"},
		{old, "loading-process-events-interval-bytes", "1024"},
		{next, "repl-diskless-sync-delay", "0"},
	} {
		cl := redis.NewClient(&redis.Options{Addr: c.p.Addr})
		err := cl.ConfigSet(ctx, c.key, c.value).Err()
		cl.Close()
		if err != nil {
			t.Fatalf("CONFIG SET %s %s: %v", c.key, c.value, err)
		}
	}
}

// TestDemotedInPlace: a DASHCACHE_REDIS_URL naming one node that a
// switchover demotes: nothing can follow the primary, so /readyz answers
// 503 on the API and the worker, saying why and what to do, and misses are
// refused.
func TestDemotedInPlace(t *testing.T) {
	old := redistest.Server(t)
	next := redistest.Replica(t, old)
	env := map[string]string{"DASHCACHE_REDIS_URL": old.URL(0), "DASHCACHE_LISTEN": "127.0.0.1:0"}
	workerAddr := startRole(t, "worker", env)
	addr := startRole(t, "api", env)
	for _, a := range []string{addr, workerAddr} {
		if code, body := readyz(t, a); code != http.StatusOK {
			t.Fatalf("/readyz of %s before: %d %s", a, code, body)
		}
	}
	next.ReplicaOf(nil)
	old.ReplicaOf(next)
	for _, a := range []string{addr, workerAddr} {
		code, body := readyz(t, a)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "READONLY") ||
			!strings.Contains(body, "DASHCACHE_REDIS_URL") || !strings.Contains(body, "DASHCACHE_REDIS_SENTINEL_ADDRS") {
			t.Errorf("/readyz of %s on a demoted node: %d %s; want 503 naming READONLY, the setting and Sentinel", a, code, body)
		}
	}
	if r := get(t, addr, "demoted", "2025-01-01", "2025-01-31", "2s"); r.status != http.StatusServiceUnavailable {
		t.Errorf("a miss on a demoted node: %d %s, want 503", r.status, r.body)
	}
}

// readyz returns the status and body of GET /readyz at addr.
func readyz(t testing.TB, addr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// load is a steady read load on one API process: every 20 ms a read of one
// of 10 reports cached before the load began (hits), and every 100 ms a
// read of a report never read before (a miss, that waits up to 5 s).
type load struct {
	client   *http.Client
	addr     string       // the API's, as client reaches it
	biCalls  func() int64 // the BI platform's calls so far
	biBefore int64        // its calls when the load began
	stop     chan struct{}
	wg       sync.WaitGroup

	mu    sync.Mutex
	reads []loadRead
}

// loadRead is one read of the load.
type loadRead struct {
	customer   string
	miss       bool
	start, end time.Time
	status     int
}

// startLoad fills the 10 hot reports, checks that a miss is served, and
// starts the load on the API at addr, read with c; it stops when the test
// ends. biCalls counts the BI platform's calls.
func startLoad(t *testing.T, c *http.Client, addr string, biCalls func() int64) *load {
	t.Helper()
	l := &load{client: c, addr: addr, biCalls: biCalls, stop: make(chan struct{})}
	for i := range 10 {
		if r := l.get(fmt.Sprintf("hot%d", i), false, "10s"); r.status != http.StatusOK {
			t.Fatalf("filling hot%d: %d", i, r.status)
		}
	}
	l.biBefore = biCalls()
	l.wg.Go(func() { l.every(20*time.Millisecond, false) })
	l.wg.Go(func() { l.every(100*time.Millisecond, true) })
	t.Cleanup(l.end)
	wait.For(t, "a miss served before the failover", 10*time.Second, func() bool {
		return l.served(time.Time{}) > 0
	})
	return l
}

func (l *load) every(d time.Duration, misses bool) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		customer := fmt.Sprintf("hot%d", i%10)
		if misses {
			customer = fmt.Sprintf("miss%d", i)
		}
		wg.Go(func() {
			r := l.get(customer, misses, "5s")
			l.mu.Lock()
			l.reads = append(l.reads, r)
			l.mu.Unlock()
		})
	}
}

// get reads customer's report for January 2025, waiting up to wait; status
// 0 is a failed request.
func (l *load) get(customer string, miss bool, wait string) loadRead {
	r := loadRead{customer: customer, miss: miss, start: time.Now()}
	resp, err := l.client.Get(fmt.Sprintf("http://%s/v1/reports?customer=%s&from=2025-01-01&to=2025-01-31&wait=%s", l.addr, customer, wait))
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.status = resp.StatusCode
	}
	r.end = time.Now()
	return r
}

// end stops the load and waits for its reads in flight.
func (l *load) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// served counts the misses begun after since and served (200).
func (l *load) served(since time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.reads {
		if r.miss && r.status == http.StatusOK && r.start.After(since) {
			n++
		}
	}
	return n
}

// failoverFigures is what a load saw through a failover at time t0.
type failoverFigures struct {
	recovered                                     time.Duration // from t0 to the answer of the first miss served that began after it
	reads, refused, misses, missesRefused, served int
	biCalls                                       int64 // made for the load's misses
}

// recover waits until a miss begun after t0 has been served and 2 s more of
// load have run, stops the load and returns its figures.
func (l *load) recover(t *testing.T, t0 time.Time) failoverFigures {
	t.Helper()
	wait.For(t, "a miss served after the failover", 30*time.Second, func() bool { return l.served(t0) > 0 })
	wait.For(t, "10 more misses served", 30*time.Second, func() bool { return l.served(t0) >= 10 })
	l.end()
	f := failoverFigures{biCalls: l.biCalls() - l.biBefore}
	for _, r := range l.reads {
		f.reads++
		if r.miss {
			f.misses++
		}
		if r.status != http.StatusOK {
			f.refused++
			if r.miss {
				f.missesRefused++
			}
			continue
		}
		if r.miss {
			f.served++
			if r.start.After(t0) && (f.recovered == 0 || r.end.Sub(t0) < f.recovered) {
				f.recovered = r.end.Sub(t0)
			}
		}
	}
	return f
}

// checkKept checks that every report served to a miss begun after t0 is on
// the Redis primary (and database) that primary names, read there directly
// (not through an API's memory).
func (l *load) checkKept(t *testing.T, primary *redis.Options, t0 time.Time) {
	t.Helper()
	rdb := redis.NewClient(primary)
	defer rdb.Close()
	kept, lost := 0, []string{}
	for _, r := range l.reads {
		if !r.miss || r.status != http.StatusOK || !r.start.After(t0) {
			continue
		}
		k, err := dashcache.ParseReportKey(r.customer, "2025-01-01", "2025-01-31", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if n, err := rdb.Exists(context.Background(), store.EntryKey(k)).Result(); err != nil || n != 1 {
			lost = append(lost, r.customer)
			continue
		}
		kept++
	}
	if len(lost) > 0 {
		t.Errorf("reports filled after the failover and missing from the new primary: %v", lost)
	}
	t.Logf("%d reports filled after the failover, all on the new primary", kept)
}

// replyError is an error reply of Redis, as go-redis returns it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

// TestNotReadyDetail: /readyz's detail says, for each way Redis refuses a
// write, what it means and what to do, naming the setting, and never shows
// the error itself (which may name hosts).
func TestNotReadyDetail(t *testing.T) {
	url := redisName{what: "the queue's Redis", setting: "DASHCACHE_REDIS_URL", sentinelSetting: "DASHCACHE_REDIS_SENTINEL_ADDRS"}
	cacheURL := redisName{what: "the reports' Redis", setting: "DASHCACHE_CACHE_REDIS_URL", sentinelSetting: "DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS"}
	sentinel := redisName{what: "the reports' Redis", setting: "DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS", sentinel: true}
	for _, c := range []struct {
		name redisName
		err  error
		want []string
	}{
		{url, replyError("READONLY You can't write against a read only replica."), []string{"DASHCACHE_REDIS_URL", "READONLY", "DASHCACHE_REDIS_SENTINEL_ADDRS", "moves with the primary"}},
		{sentinel, replyError("READONLY You can't write against a read only replica."), []string{"DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS", "READONLY", "get-master-addr-by-name"}},
		{cacheURL, replyError("READONLY You can't write against a read only replica."),
			[]string{"DASHCACHE_CACHE_REDIS_URL", "DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS"}},
		{url, replyError("LOADING Redis is loading the dataset in memory"), []string{"LOADING", "once it has loaded"}},
		{url, replyError("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), []string{"MASTERDOWN", "lost its primary"}},
		{url, replyError("OOM command not allowed when used memory > 'maxmemory'."), []string{"OOM", "maxmemory"}},
		{url, replyError("NOPERM this user has no permissions to run the 'set' command"), []string{"refuses writes (NOPERM)"}},
		{url, fmt.Errorf("dial tcp 10.1.2.3:6379: connect: connection refused"), []string{"DASHCACHE_REDIS_URL", "unreachable"}},
	} {
		err := c.name.notReady(c.err)
		var nr *api.NotReady
		if !errors.As(err, &nr) || !errors.Is(err, c.err) {
			t.Fatalf("notReady(%v) = %#v, want an *api.NotReady wrapping it", c.err, err)
		}
		for _, w := range c.want {
			if !strings.Contains(nr.Detail, w) {
				t.Errorf("detail for %q: %q, want it to say %q", c.err, nr.Detail, w)
			}
		}
		if strings.Contains(nr.Detail, "10.1.2.3") || strings.Contains(nr.Detail, "permissions") {
			t.Errorf("detail %q shows the error itself", nr.Detail)
		}
	}
}
