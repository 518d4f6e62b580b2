package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
)

// TestInvalidationAcrossAPIs: a report read on API a2 just before an
// invalidation through API a1 (or through the invalidate command, as an ETL
// would run it) is refreshed at once, though a2 hands its reads to Redis on
// its own only every 10 s: the invalidation asks every API process for its
// reads first, and says that both answered. Counted at the BI server.
func TestInvalidationAcrossAPIs(t *testing.T) {
	url, rdb := redistest.URLClient(t)
	bi := newBIServer(t, 20*time.Millisecond, "")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     url,
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  bi.URL,
		"DASHCACHE_PROVIDER_RATE": "100",
	}
	startRole(t, "worker", env)
	a1, a2 := startRole(t, "api", env), startRole(t, "api", env)
	ctx := context.Background()
	calls := func() int { n, _ := bi.figures("acme"); return n }

	for i, via := range []string{"a1", "the invalidate command"} {
		from, to := day(10*i), day(10*i+6)
		if xc := readCache(t, a2, "acme", from, to); xc != "miss" || calls() != 2*i+1 {
			t.Fatalf("the first read on a2: %s, %d BI calls", xc, calls())
		}
		// The fill's end: after its write (which answered the read) it
		// indexes the report and checks the change log, and one logged by
		// then marks the report stale itself, not the invalidation.
		k, err := dashcache.ParseReportKey("acme", from, to, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		wait.For(t, "the fill to release its lock", 10*time.Second, func() bool { return rdb.Exists(ctx, store.LockKey(k)).Val() == 0 })
		if xc := readCache(t, a2, "acme", from, to); xc != "hit" {
			t.Fatalf("the read on a2: %s, want hit", xc)
		}

		changed := day(10*i + 3)
		var res dashcache.Invalidation
		if via == "a1" {
			status, body := post(t, a1, "/v1/invalidate", `{"customers":["acme"],"from":"`+changed+`","to":"`+changed+`"}`)
			if err := json.Unmarshal([]byte(body), &res); status != http.StatusOK || err != nil {
				t.Fatalf("invalidate through a1: %d %s", status, body)
			}
		} else {
			var out strings.Builder
			getenv := func(k string) string { return map[string]string{"DASHCACHE_REDIS_URL": url}[k] }
			if err := Run(ctx, []string{"invalidate", "--customers", "acme", "--from", changed}, getenv, &out, io.Discard); err != nil {
				t.Fatal(err)
			}
			if want := "1 matched, 1 marked stale, 1 refreshed now (reads of 2 API processes, 0 did not answer)\n"; out.String() != want {
				t.Fatalf("invalidate: %q, want %q", out.String(), want)
			}
			res = dashcache.Invalidation{Matched: 1, MarkedStale: 1, Refreshed: 1, APIs: 2}
		}
		if want := (dashcache.Invalidation{Matched: 1, MarkedStale: 1, Refreshed: 1, APIs: 2}); res != want {
			t.Fatalf("invalidation via %s: %+v, want %+v", via, res, want)
		}
		wait.For(t, "the refresh's BI call", 30*time.Second, func() bool { return calls() == 2*i+2 })
	}
}
