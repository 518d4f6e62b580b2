package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds dashcache once per test run and returns its path.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dashcache-test-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "dashcache")
		if out, err := exec.Command("go", "build", "-o", binPath, "github.com/dashcache/dashcache/cmd/dashcache").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// startProcess runs the binary as role with exactly env (and PATH), killed
// when the test ends if it still runs.
func startProcess(t *testing.T, role string, env map[string]string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary(t), role)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// TestBareBinary builds dashcache and runs it with no settings but a free port:
// embedded Redis, built-in simulated BI platform (2-5 s). The same report is a
// miss, then a hit; SIGTERM stops it cleanly.
func TestBareBinary(t *testing.T) {
	cmd := exec.Command(binary(t))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DASHCACHE_LISTEN=127.0.0.1:0"}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := bufio.NewScanner(stdout)
	var addr, first string
	for addr == "" && lines.Scan() {
		var l struct{ Message, Addr string }
		json.Unmarshal(lines.Bytes(), &l)
		if first == "" {
			first = l.Message
		}
		if l.Message == "listening" {
			addr = l.Addr
		}
	}
	go io.Copy(io.Discard, stdout)
	if addr == "" {
		t.Fatal("dashcache never logged its listen address")
	}
	if !strings.Contains(first, "embedded") {
		t.Errorf("first log line %q does not say the Redis is embedded", first)
	}

	url := "http://" + addr + "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31"
	for _, want := range []string{"miss", "hit"} {
		resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != want || !strings.Contains(string(body), `"data":{`) {
			t.Fatalf("want 200 %s, got %d X-Cache %q body %.200s", want, resp.StatusCode, resp.Header.Get("X-Cache"), body)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit 20 s after SIGTERM")
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"nonsense"}, {"api", "extra"}} {
		var stderr strings.Builder
		err := Run(t.Context(), args, func(string) string { return "" }, io.Discard, &stderr)
		if err != ErrUsage || !strings.Contains(stderr.String(), "usage: dashcache") {
			t.Errorf("run(%q) = %v, stderr %q; want usage", args, err, stderr.String())
		}
	}
}

func TestSettingsRefused(t *testing.T) {
	for _, c := range []struct {
		role string
		env  map[string]string
		want string
	}{
		{"api", nil, "DASHCACHE_REDIS_URL, DASHCACHE_REDIS_CLUSTER_ADDRS or DASHCACHE_REDIS_SENTINEL_ADDRS is required"},
		{"all", map[string]string{"DASHCACHE_LISTEN": "0.0.0.0:8080"}, "DASHCACHE_ALLOW_UNAUTHENTICATED"},
		{"all", map[string]string{"DASHCACHE_PROVIDER_TIMEOUT": "soon"}, "DASHCACHE_PROVIDER_TIMEOUT"},
		{"all", map[string]string{"DASHCACHE_REDIS_URL": "http://x"}, "DASHCACHE_REDIS_URL"},
		{"all", map[string]string{"DASHCACHE_TIMEZONE": "Mars/Base"}, "DASHCACHE_TIMEZONE"},
		{"all", map[string]string{"DASHCACHE_API_KEYS": "k"}, "DASHCACHE_API_KEYS"},
		{"all", map[string]string{"DASHCACHE_MONITORING_READONLY": "perhaps"}, "DASHCACHE_MONITORING_READONLY"},
		{"scheduler", map[string]string{"DASHCACHE_REDIS_URL": "redis://127.0.0.1:1"}, "DASHCACHE_SCHEDULE_FILE"},
		{"all", map[string]string{"DASHCACHE_CUSTOMER_DAILY_CALLS": "-1"}, "DASHCACHE_CUSTOMER_DAILY_CALLS"},
		{"all", map[string]string{"DASHCACHE_CUSTOMER_CONCURRENCY": "0"}, "DASHCACHE_CUSTOMER_CONCURRENCY"},
		{"all", map[string]string{"DASHCACHE_EARLIEST_DATE": "2015-13-01"}, "DASHCACHE_EARLIEST_DATE"},
		{"all", map[string]string{"DASHCACHE_PROVIDER_MAX_BYTES": "16MiB"}, "DASHCACHE_PROVIDER_MAX_BYTES"},
		{"all", map[string]string{"DASHCACHE_BREAKER_COOLDOWN": "-5s"}, "DASHCACHE_BREAKER_COOLDOWN"},
		{"api", map[string]string{"DASHCACHE_REDIS_SENTINEL_ADDRS": "s1:26379"}, "DASHCACHE_REDIS_SENTINEL_MASTER"},
		{"api", map[string]string{"DASHCACHE_REDIS_SENTINEL_MASTER": "mymaster"}, "only with Redis Sentinel (DASHCACHE_REDIS_SENTINEL_ADDRS)"},
		{"api", map[string]string{"DASHCACHE_REDIS_URL": "redis://h:1", "DASHCACHE_REDIS_PASSWORD": "x"}, "DASHCACHE_REDIS_PASSWORD: only with Redis Sentinel"},
		{"api", map[string]string{"DASHCACHE_REDIS_SENTINEL_ADDRS": "s1", "DASHCACHE_REDIS_SENTINEL_MASTER": "m"}, "DASHCACHE_REDIS_SENTINEL_ADDRS: want host:port"},
		{"api", map[string]string{"DASHCACHE_REDIS_SENTINEL_ADDRS": "s1:26379", "DASHCACHE_REDIS_SENTINEL_MASTER": "m", "DASHCACHE_REDIS_URL": "redis://h:1"},
			"DASHCACHE_REDIS_URL: give either DASHCACHE_REDIS_URL or DASHCACHE_REDIS_SENTINEL_ADDRS"},
		{"api", map[string]string{"DASHCACHE_REDIS_SENTINEL_ADDRS": "s1:26379", "DASHCACHE_REDIS_SENTINEL_MASTER": "m", "DASHCACHE_REDIS_CLUSTER_ADDRS": "c1:7000"},
			"DASHCACHE_REDIS_SENTINEL_ADDRS: give either DASHCACHE_REDIS_SENTINEL_ADDRS or DASHCACHE_REDIS_CLUSTER_ADDRS"},
		{"api", map[string]string{"DASHCACHE_REDIS_SENTINEL_ADDRS": "s1:26379", "DASHCACHE_REDIS_SENTINEL_MASTER": "m", "DASHCACHE_REDIS_DB": "-1"}, "DASHCACHE_REDIS_DB"},
		{"api", map[string]string{"DASHCACHE_REDIS_URL": "redis://h:1", "DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS": "s1:26379",
			"DASHCACHE_CACHE_REDIS_SENTINEL_MASTER": "m", "DASHCACHE_CACHE_REDIS_URL": "redis://c:1"},
			"DASHCACHE_CACHE_REDIS_URL: give either DASHCACHE_CACHE_REDIS_URL or DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS"},
		{"all", map[string]string{"DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS": "s1:26379", "DASHCACHE_CACHE_REDIS_SENTINEL_MASTER": "m"},
			"DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS: a Redis of the reports' own needs"},
	} {
		err := Run(t.Context(), []string{c.role}, func(k string) string { return c.env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s with %v: %v, want an error naming %s", c.role, c.env, err, c.want)
		}
	}
}
