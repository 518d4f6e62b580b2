package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/wait"
	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the name the sentinels of Sentinels know the primary by.
const SentinelMaster = "dashcache"

// Replica starts a private redis-server (as Server does) that replicates
// primary, and returns it once its link to the primary is up and it has
// loaded the primary's data.
func Replica(t testing.TB, primary *Process) *Process {
	t.Helper()
	r := Server(t, "--replicaof", "127.0.0.1", primary.Port())
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	wait.For(t, "the replica "+r.Addr+" to sync with "+primary.Addr, 15*time.Second, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return r
}

// Sentinels starts n sentinels (redis-server --sentinel, each with its
// config file in a directory of the test's own) on free loopback ports,
// watching primary as SentinelMaster with a quorum of n/2+1. A primary that
// does not answer for a second is taken for down, and a failover may be
// tried again after 3 s. It returns their addresses once each knows
// wantReplicas replicas and the other sentinels, so that a failover can
// start at once; they are killed when the test ends.
func Sentinels(t testing.TB, primary *Process, n, wantReplicas int) []string {
	t.Helper()
	bin := lookPath(t, "redis-server")
	var addrs []string
	for range n {
		dir := t.TempDir()
		file := filepath.Join(dir, "sentinel.conf")
		s := launch(t, func(port int) []string {
			conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %s %d\n"+
				"sentinel down-after-milliseconds %[3]s 1000\n"+
				"sentinel failover-timeout %[3]s 3000\n", port, dir, SentinelMaster, primary.Port(), n/2+1)
			// Sentinel rewrites its file: a fresh one for each try of a port.
			if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{bin, file, "--sentinel"}
		})
		addrs = append(addrs, s.Addr)
	}
	for _, addr := range addrs {
		c := redis.NewSentinelClient(&redis.Options{Addr: addr})
		wait.For(t, "sentinel "+addr+" to know the replicas and the other sentinels", 30*time.Second, func() bool {
			ctx := context.Background()
			replicas, err1 := c.Replicas(ctx, SentinelMaster).Result()
			sentinels, err2 := c.Sentinels(ctx, SentinelMaster).Result()
			return err1 == nil && err2 == nil && len(replicas) >= wantReplicas && len(sentinels) >= n-1
		})
		c.Close()
	}
	return addrs
}

// SentinelPrimary returns the address that the sentinel at addr gives for
// the primary, or "" when it does not answer.
func SentinelPrimary(addr string) string {
	c := redis.NewSentinelClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	hostPort, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil || len(hostPort) != 2 {
		return ""
	}
	return hostPort[0] + ":" + hostPort[1]
}

// ReplicaOf makes it a replica of primary (REPLICAOF), or, with nil, a
// primary (REPLICAOF NO ONE).
func (p *Process) ReplicaOf(primary *Process) {
	p.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: p.Addr})
	defer c.Close()
	host, port := "NO", "ONE"
	if primary != nil {
		host, port = "127.0.0.1", primary.Port()
	}
	if err := c.SlaveOf(context.Background(), host, port).Err(); err != nil {
		p.t.Fatalf("REPLICAOF %s %s on %s: %v", host, port, p.Addr, err)
	}
}
