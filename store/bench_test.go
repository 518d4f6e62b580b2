package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
)

// BenchmarkEntrySize reports the Redis memory (MEMORY USAGE) of the
// simulator's reports of a day, a month and a year, stored as NewEntry does
// (compressed above store.CompressAbove) and uncompressed, and the ratio. It
// needs DASHCACHE_TEST_REDIS_URL.
func BenchmarkEntrySize(b *testing.B) {
	rdb := redistest.Client(b)
	ctx := context.Background()
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	for _, c := range []struct{ name, from, to string }{
		{"day", "2024-06-01", "2024-06-01"},
		{"month", "2024-06-01", "2024-06-30"},
		{"year", "2024-01-01", "2024-12-31"},
	} {
		b.Run(c.name, func(b *testing.B) {
			k, _ := dashcache.ParseReportKey("acme", c.from, c.to, time.Now())
			data, _ := sim.Query(ctx, k)
			var stored, plain int64
			for b.Loop() {
				for i, build := range []func(dashcache.ReportKey, []byte, time.Time, time.Duration, time.Duration) []byte{store.NewEntry, store.NewEntryUncompressed} {
					rdb.Set(ctx, store.EntryKey(k), build(k, data, time.Now(), time.Second, time.Hour), time.Hour)
					n, err := rdb.MemoryUsage(ctx, store.EntryKey(k)).Result()
					if err != nil {
						b.Fatal(err)
					}
					if i == 0 {
						stored = n
					} else {
						plain = n
					}
				}
			}
			b.ReportMetric(float64(stored), "redis-bytes")
			b.ReportMetric(float64(plain), "uncompressed-bytes")
			b.ReportMetric(float64(plain)/float64(stored), "x-smaller")
		})
	}
}
