package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/provider"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// TestOpenRedisCluster: DASHCACHE_REDIS_CLUSTER_ADDRS gives a cluster client
// with the single-node client's timeouts; DASHCACHE_REDIS_URL, if set too,
// gives only credentials and TLS; no password reaches the log.
func TestOpenRedisCluster(t *testing.T) {
	addrs := []string{"127.0.0.1:7000", "127.0.0.1:7001"}
	tests := []struct {
		name, url          string
		wantUser, wantPass string
		wantTLS            bool
		wantErr            string
	}{
		{name: "no URL"},
		{name: "credentials", url: "redis://dc:" + testSecret + "@ignored.example:6379", wantUser: "dc", wantPass: testSecret},
		{name: "TLS", url: "rediss://:" + testSecret + "@ignored.example:6380/0", wantPass: testSecret, wantTLS: true},
		{name: "database", url: "redis://127.0.0.1:6379/3", wantErr: "only database 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			rdb, closeRedis, err := openRedis(Config{RedisURL: tt.url, RedisClusterAddrs: addrs}, zerolog.New(&logs))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closeRedis()
			cc, ok := rdb.(*redis.ClusterClient)
			if !ok {
				t.Fatalf("openRedis returned %T, want *redis.ClusterClient", rdb)
			}
			o := cc.Options()
			if !slices.Equal(o.Addrs, addrs) || o.Username != tt.wantUser || o.Password != tt.wantPass {
				t.Errorf("addrs %v user %q password %q, want %v %q %q", o.Addrs, o.Username, o.Password, addrs, tt.wantUser, tt.wantPass)
			}
			if o.DialTimeout != 2*time.Second || o.ReadTimeout != 2*time.Second || o.WriteTimeout != 2*time.Second || o.PoolTimeout != 3*time.Second {
				t.Errorf("timeouts dial %s read %s write %s pool %s, want 2s 2s 2s 3s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout)
			}
			if (o.TLSConfig != nil) != tt.wantTLS || (o.TLSConfig != nil && o.TLSConfig.ServerName != "") {
				t.Errorf("TLS config %+v, want TLS %v without a fixed server name", o.TLSConfig, tt.wantTLS)
			}
			if !strings.Contains(logs.String(), addrs[1]) {
				t.Errorf("log does not name the cluster addresses: %s", logs.String())
			}
			if strings.Contains(logs.String(), testSecret) {
				t.Errorf("log shows the password: %s", logs.String())
			}
		})
	}
}

// TestStampedeCluster: 100 concurrent reads of 10 uncached reports through 2
// API servers and 2 workers on a 3-master Redis Cluster make exactly one call
// per report at the BI server, and every reader of a report gets the same
// bytes. The reports' keys are spread over the masters, so the Lua scripts,
// the fill notification (PUBLISH from a script on one node, SUBSCRIBE on
// another), asynq and the rate limit all run across slots.
func TestStampedeCluster(t *testing.T) {
	const (
		apis, workers, keys, readers = 2, 2, 10, 100
		biLatency                    = 300 * time.Millisecond
	)
	addrs := redistest.Cluster(t)

	bi := provider.NewSimulator(provider.SimConfig{MinLatency: biLatency, MaxLatency: biLatency, Token: testSecret})
	var mu sync.Mutex
	callsPerKey := map[string]int{} // counted at the BI server, by Idempotency-Key
	biHandler := bi.Handler()
	biServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/query" {
			mu.Lock()
			callsPerKey[r.Header.Get("Idempotency-Key")]++
			mu.Unlock()
		}
		biHandler.ServeHTTP(w, r)
	}))
	defer biServer.Close()

	env := map[string]string{
		"DASHCACHE_REDIS_CLUSTER_ADDRS": strings.Join(addrs, ","),
		"DASHCACHE_LISTEN":              "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":        biServer.URL,
		"DASHCACHE_PROVIDER_TOKEN":      testSecret,
		"DASHCACHE_PROVIDER_RATE":       "100",
	}
	t0 := time.Now()
	runStampede(t, env, apis, workers, keys, readers, "shop", "10s") // 10s: a lost notification shows as a 202
	elapsed := time.Since(t0)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	defer cc.Close()
	// One call each: a task left to run after the readers were answered (a
	// duplicate fill, a rescue) has run once the queues are idle, and a BI
	// call it made is counted.
	waitIdle(t, cc)
	mu.Lock()
	defer mu.Unlock()
	if len(callsPerKey) != keys || bi.Calls() != keys {
		t.Fatalf("the BI server counted %d calls for %d distinct keys, want one for each of %d: %v", bi.Calls(), len(callsPerKey), keys, callsPerKey)
	}
	for k, n := range callsPerKey {
		if n != 1 {
			t.Errorf("the BI server was called %d times for %s, want 1", n, k)
		}
	}

	// Where the data went: the reports spread over the masters, and every
	// key is dashcache's or asynq's.
	ctx := context.Background()
	var nodesMu sync.Mutex
	reportsPerNode := map[string]int{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			return err
		}
		nodesMu.Lock()
		defer nodesMu.Unlock()
		for _, k := range keys {
			switch {
			case strings.HasPrefix(k, "dashcache:{shop") && strings.HasSuffix(k, "}:report"):
				reportsPerNode[c.Options().Addr]++
			case strings.HasPrefix(k, "dashcache:"), strings.HasPrefix(k, "asynq:"):
			default:
				t.Errorf("key %q on %s is neither dashcache's nor asynq's", k, c.Options().Addr)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range reportsPerNode {
		total += n
	}
	if total != keys || len(reportsPerNode) < 2 {
		t.Errorf("reports per master %v, want %d reports on at least 2 masters", reportsPerNode, keys)
	}
	t.Logf("BI calls %d for %d keys and %d readers on a %d-master cluster (reports per master %v); all answered in %s",
		bi.Calls(), keys, readers, len(addrs), reportsPerNode, elapsed.Round(time.Millisecond))
}
