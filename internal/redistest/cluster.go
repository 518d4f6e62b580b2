package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterBusOffset is how far above its client port a Redis Cluster node
// listens for the cluster bus (the default of every Redis version).
const clusterBusOffset = 10000

// Cluster starts a private Redis Cluster of 3 masters (no replicas) on free
// loopback ports and returns their host:port addresses once every node says
// cluster_state:ok. The nodes are redis-server child processes without
// persistence, killed when the test ends. Without redis-server and redis-cli
// on the PATH the test is skipped, except under CI=true, where it fails.
func Cluster(t testing.TB) []string {
	t.Helper()
	server, cli := lookPath(t, "redis-server"), lookPath(t, "redis-cli")

	dir := t.TempDir() // removed after the nodes are killed (cleanups run last first)
	addrs := make([]string, 3)
	for i := range addrs {
		addrs[i] = startClusterNode(t, server, dir)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create %s: %v\n%s", strings.Join(addrs, " "), err, out)
	}

	// Every node must see the whole cluster before a client relies on any
	// of them for the slot map.
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range addrs {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		var info string
		for {
			var err error
			info, err = c.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(addrs))+"\r\n") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("Redis Cluster node %s not ready after 15s (err %v):\n%s", addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return addrs
}

// startClusterNode starts one cluster-enabled redis-server on a free port
// whose cluster bus port is free too, and returns its address once it answers
// PING. A port taken between the check and the server's bind is retried.
func startClusterNode(t testing.TB, server, dir string) string {
	t.Helper()
	var lastErr error
	for range 10 {
		port, err := freeClusterPort()
		if err != nil {
			lastErr = err
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		nodeDir := filepath.Join(dir, strconv.Itoa(port))
		if err := os.Mkdir(nodeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd := exec.Command(server,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
			"--dir", nodeDir, "--save", "", "--appendonly", "no", "--daemonize", "no")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitPing(addr, exited); err != nil {
			cmd.Process.Kill()
			<-exited
			lastErr = fmt.Errorf("redis-server on %s: %v\n%s", addr, err, out.String())
			continue
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		return addr
	}
	t.Fatalf("could not start a Redis Cluster node: %v", lastErr)
	return ""
}

// waitPing returns nil once addr answers PING (or asks for a password), or
// an error when the server exited or did not answer within 10 s.
func waitPing(addr string, exited <-chan error) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil || redis.HasErrorPrefix(err, "NOAUTH") { // it answers; it wants a password
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeClusterPort returns a loopback port that is free, as is the port
// clusterBusOffset above it.
func freeClusterPort() (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if port+clusterBusOffset > 65535 {
			ln.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+clusterBusOffset)))
		ln.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port pair (port, port+%d) found", clusterBusOffset)
}
