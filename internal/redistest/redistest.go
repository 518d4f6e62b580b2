// Package redistest gives integration tests a private database on the real
// Redis named by DASHCACHE_TEST_REDIS_URL (Options, Client, URL), a private
// redis-server of their own that they may kill and start again (Server), its
// replicas and sentinels watching it (Replica, Sentinels, Process.ReplicaOf),
// an address that moves between servers (Proxy), or a private Redis Cluster
// started from redis-server and redis-cli (Cluster).
// Without what a test needs, the test is skipped, except under CI=true, where
// it fails: CI must never pass by skipping.
package redistest

import (
	"context"
	"net/url"
	"os"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
)

// EnvURL names the Redis server integration tests use.
const EnvURL = "DASHCACHE_TEST_REDIS_URL"

// counterKey, on database 0, hands out the databases 1..15 in turn.
const counterKey = "dashcache-test:next-db"

// Options returns connection options for an empty database of its own on the
// test Redis, flushed again when the test ends.
func Options(t testing.TB) *redis.Options {
	t.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: integration tests need a real Redis under CI (.ci/run starts one)", EnvURL)
		}
		t.Skipf("%s is not set; set it to a redis:// URL to run integration tests", EnvURL)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("parsing %s: %v", EnvURL, err)
	}
	ctx := context.Background()
	admin := redis.NewClient(opt)
	n, err := admin.Incr(ctx, counterKey).Result()
	admin.Close()
	if err != nil {
		t.Fatalf("test Redis at %s is unreachable: %v", opt.Addr, err)
	}
	opt.DB = 1 + int(n%15)
	flush := func() {
		c := redis.NewClient(opt)
		defer c.Close()
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Errorf("flushing test database %d: %v", opt.DB, err)
		}
	}
	flush()
	t.Cleanup(flush)
	return opt
}

// Client returns a client on a database of the test's own (see Options), closed
// when the test ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(Options(t))
	t.Cleanup(func() { c.Close() })
	return c
}

// URL returns a redis:// URL of a database of the test's own (see Options).
func URL(t testing.TB) string {
	t.Helper()
	return urlOf(Options(t))
}

// URLClient returns a redis:// URL of a database of the test's own (see
// Options) and a client on the same database, closed when the test ends.
func URLClient(t testing.TB) (string, *redis.Client) {
	t.Helper()
	opt := Options(t)
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	return urlOf(opt), c
}

func urlOf(opt *redis.Options) string {
	u := url.URL{Scheme: "redis", Host: opt.Addr, Path: "/" + strconv.Itoa(opt.DB)}
	if opt.Username != "" || opt.Password != "" {
		u.User = url.UserPassword(opt.Username, opt.Password)
	}
	return u.String()
}
