package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// BenchmarkHit compares the hit path of GET /v1/reports with its baseline, a
// bare handler that does one Redis GET of the same bytes and writes them, on
// the same Redis in the same run. Set DASHCACHE_TEST_REDIS_URL for a real
// Redis (else miniredis, which measures little). The ratio of ns/op is the
// figure to watch.
func BenchmarkHit(b *testing.B) {
	var rdb *redis.Client
	if os.Getenv(redistest.EnvURL) != "" {
		rdb = redistest.Client(b)
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: miniredis.RunT(b).Addr()})
		b.Cleanup(func() { rdb.Close() })
	}
	st := store.New(rdb)
	k, _ := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", now)
	data := make([]byte, 0, 2048)
	data = append(data, `{"series":[`...)
	for len(data) < 1900 {
		data = append(data, `{"date":"2025-01-01","revenue":1234.5,"orders":12},`...)
	}
	data = append(data[:len(data)-1], "]}"...)
	fill(b, st, k, string(data))
	srv, err := api.New(api.Config{
		Store: st,
		Queue: hitsOnly{b},
		Log:   zerolog.New(io.Discard),
		Now:   func() time.Time { return now },
	})
	if err != nil {
		b.Fatal(err)
	}
	redisKey := store.EntryKey(k)
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := rdb.Get(r.Context(), redisKey).Result()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, v)
	})
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"api", srv.Handler()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(25) // 50 concurrent requests on 2 cores, like wrk -c50
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest(http.MethodGet, "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31", nil)
				for pb.Next() {
					w := httptest.NewRecorder()
					c.h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// hitsOnly is the queue of a benchmark that serves only hits: nothing may be
// enqueued but an early refresh.
type hitsOnly struct{ b *testing.B }

func (q hitsOnly) Ensure(context.Context, dashcache.ReportKey) (bool, error) {
	q.b.Error("a hit enqueued a fill")
	return false, nil
}

func (hitsOnly) Warm(context.Context, dashcache.ReportKey, dashcache.Refresh) (bool, error) {
	return false, nil
}
