package cli

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// TestRedisErrorsCounted: dashcache_redis_errors_total{redis} counts a failed
// command or pipeline of the queue's or the cache's Redis once, and not a
// missing key, a script's first run (NOSCRIPT), or a command whose caller
// gave up.
func TestRedisErrorsCounted(t *testing.T) {
	t.Parallel()
	queueRedis, cacheRedis := miniredis.RunT(t), miniredis.RunT(t)
	cfg := Config{RedisURL: "redis://" + queueRedis.Addr() + "/0", CacheRedisURL: "redis://" + cacheRedis.Addr() + "/0"}
	p, err := connect(t.Context(), cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	ctx := t.Context()
	counts := func() (queue, cache float64) {
		return testutil.ToFloat64(p.errors.WithLabelValues("queue")), testutil.ToFloat64(p.errors.WithLabelValues("cache"))
	}
	q0, c0 := counts() // connect's own commands (miniredis has no CONFIG GET)
	expect := func(step string, queue, cache float64) {
		t.Helper()
		if q, c := counts(); q-q0 != queue || c-c0 != cache {
			t.Errorf("after %s: %v queue and %v cache errors counted, want %v and %v", step, q-q0, c-c0, queue, cache)
		}
	}

	p.queue.Get(ctx, "missing")
	redis.NewScript("return 1").Run(ctx, p.queue, nil) // EVALSHA: NOSCRIPT, then EVAL
	gaveUp, cancel := context.WithCancel(ctx)
	cancel()
	p.queue.Get(gaveUp, "k")
	expect("a missing key, a new script and a canceled command", 0, 0)

	queueRedis.SetError("OOM command not allowed when used memory > 'maxmemory'.")
	p.queue.Set(ctx, "k", "v", 0)
	expect("an OOM reply", 1, 0)

	cacheRedis.Close()
	p.cache.Get(ctx, "k") // retried once by the client: still one failed command
	p.cache.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Get(ctx, "a")
		pipe.Get(ctx, "b")
		return nil
	})
	expect("a command and a pipeline of two on a Redis that is down", 1, 2)
}
