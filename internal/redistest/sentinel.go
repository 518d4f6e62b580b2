package redistest

import (
	"context"
	"fmt"
	"net"
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
// primary, with primary's password as its own, and returns it once its link
// to the primary is up and it has loaded the primary's data.
func Replica(t testing.TB, primary *Process) *Process {
	t.Helper()
	args := []string{"--replicaof", "127.0.0.1", primary.Port()}
	if primary.Password != "" {
		args = append(args, "--masterauth", primary.Password, "--requirepass", primary.Password)
	}
	r := Server(t, args...)
	c := r.client()
	defer c.Close()
	wait.For(t, "the replica "+r.Addr+" to sync with "+primary.Addr, 15*time.Second, func() bool {
		info, err := c.Info(context.Background(), "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	return r
}

// ReplicaOf makes it a replica of primary (REPLICAOF), or, with nil, a
// primary (REPLICAOF NO ONE).
func (p *Process) ReplicaOf(primary *Process) {
	p.t.Helper()
	c := p.client()
	defer c.Close()
	host, port := "NO", "ONE"
	if primary != nil {
		host, port = "127.0.0.1", primary.Port()
	}
	if err := c.SlaveOf(context.Background(), host, port).Err(); err != nil {
		p.t.Fatalf("REPLICAOF %s %s on %s: %v", host, port, p.Addr, err)
	}
}

// SentinelGroup is the sentinels of a test, watching one primary as
// SentinelMaster.
type SentinelGroup struct {
	// Addrs are their host:port: on loopback for those of Sentinels; the
	// methods ask the first.
	Addrs []string
	// Dial, when set, is how the test reaches them (a network namespace's
	// dialer, for sentinels a test runs on hosts of its own).
	Dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	password string
}

// Sentinels starts n sentinels (redis-server --sentinel, each with its
// config file in a directory of the test's own) on free loopback ports,
// watching primary (with its password) as SentinelMaster with a quorum of
// n/2+1, and asking clients for password unless it is "". A primary that
// does not answer for a second is taken for down, and a failover may be
// tried again after 3 s. It returns once each sentinel knows wantReplicas
// replicas and the other sentinels, so that a failover can start at once;
// they are killed when the test ends.
func Sentinels(t testing.TB, primary *Process, n, wantReplicas int, password string) *SentinelGroup {
	t.Helper()
	bin := lookPath(t, "redis-server")
	g := &SentinelGroup{password: password}
	for range n {
		dir := t.TempDir()
		file := filepath.Join(dir, "sentinel.conf")
		s := launch(t, func(port int) []string {
			conf := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\n"+
				"sentinel monitor %s 127.0.0.1 %s %d\n"+
				"sentinel down-after-milliseconds %[3]s 1000\n"+
				"sentinel failover-timeout %[3]s 3000\n", port, dir, SentinelMaster, primary.Port(), n/2+1)
			if primary.Password != "" {
				conf += fmt.Sprintf("sentinel auth-pass %s %s\n", SentinelMaster, primary.Password)
			}
			if password != "" {
				conf += "requirepass " + password + "\n" // also used with the other sentinels
			}
			// Sentinel rewrites its file: a fresh one for each try of a port.
			if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{bin, file, "--sentinel"}
		})
		g.Addrs = append(g.Addrs, s.Addr)
	}
	g.AwaitKnown(t, wantReplicas)
	return g
}

// AwaitKnown returns once each sentinel knows wantReplicas replicas of
// SentinelMaster and the other sentinels, so that a failover can start at
// once, or fails the test after 30 s.
func (g *SentinelGroup) AwaitKnown(t testing.TB, wantReplicas int) {
	t.Helper()
	for i := range g.Addrs {
		c := g.client(i)
		wait.For(t, "sentinel "+g.Addrs[i]+" to know the replicas and the other sentinels", 30*time.Second, func() bool {
			ctx := context.Background()
			replicas, err1 := c.Replicas(ctx, SentinelMaster).Result()
			sentinels, err2 := c.Sentinels(ctx, SentinelMaster).Result()
			return err1 == nil && err2 == nil && len(replicas) >= wantReplicas && len(sentinels) >= len(g.Addrs)-1
		})
		c.Close()
	}
}

// client returns a client of sentinel i, which the caller closes.
func (g *SentinelGroup) client(i int) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: g.Addrs[i], Password: g.password, MaxRetries: -1, Dialer: g.Dial})
}

// Primary returns the address that the first sentinel gives for the
// primary, or "" when it does not answer.
func (g *SentinelGroup) Primary() string {
	c := g.client(0)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	hostPort, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil || len(hostPort) != 2 {
		return ""
	}
	return hostPort[0] + ":" + hostPort[1]
}

// Failover asks the first sentinel for a planned failover (SENTINEL
// FAILOVER): it promotes a replica and demotes the primary.
func (g *SentinelGroup) Failover(t testing.TB) {
	t.Helper()
	c := g.client(0)
	defer c.Close()
	if err := c.Failover(context.Background(), SentinelMaster).Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER %s: %v", SentinelMaster, err)
	}
}

// Switched returns a channel that receives the time at which the first
// sentinel announces, on its channel +switch-master, that the primary
// changed: when clients such as go-redis's failover client move to the new
// primary.
func (g *SentinelGroup) Switched(t testing.TB) <-chan time.Time {
	t.Helper()
	c := g.client(0)
	ps := c.Subscribe(context.Background(), "+switch-master")
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatalf("subscribing to +switch-master: %v", err)
	}
	switched := make(chan time.Time, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := ps.ReceiveMessage(context.Background()); err == nil {
			switched <- time.Now()
		}
	}()
	t.Cleanup(func() {
		ps.Close()
		<-done
		c.Close()
	})
	return switched
}

// Role returns its role as ROLE names it ("master", "slave"), or "" when
// it does not answer.
func (p *Process) Role() string {
	c := p.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || len(role) == 0 {
		return ""
	}
	name, _ := role[0].(string)
	return name
}
