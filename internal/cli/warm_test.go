package cli

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/provider"
	"github.com/hibiken/asynq"
)

func TestWarmEnqueuesThenDeduplicates(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	env := func(k string) string {
		return map[string]string{"DASHCACHE_REDIS_URL": redisURL}[k]
	}
	warm := func(args ...string) (string, error) {
		var out strings.Builder
		err := Run(t.Context(), append([]string{"warm"}, args...), env, &out, io.Discard)
		return out.String(), err
	}
	out, err := warm("--customers", "acme,globex", "--ranges", "yesterday,last_7_days")
	if err != nil || strings.Count(out, "enqueued   ") != 4 || !strings.HasSuffix(out, "4 enqueued, 0 duplicate, 0 skipped, 0 failed\n") {
		t.Fatalf("first warm: err %v, output:\n%s", err, out)
	}
	out, err = warm("--customers", "acme,globex", "--ranges", "yesterday,last_7_days")
	if err != nil || strings.Count(out, "duplicate  ") != 4 || !strings.HasSuffix(out, "0 enqueued, 4 duplicate, 0 skipped, 0 failed\n") {
		t.Fatalf("second warm: err %v, output:\n%s", err, out)
	}
	out, err = warm("--customers", "acme", "--from", "2025-01-01", "--to", "2025-01-31", "--force")
	if err != nil || out != "enqueued   acme|2025-01-01|2025-01-31\n1 enqueued, 0 duplicate, 0 skipped, 0 failed\n" {
		t.Fatalf("explicit range: err %v, output:\n%s", err, out)
	}

	insp := asynq.NewInspectorFromRedisClient(rdb)
	q, err := insp.GetQueueInfo(jobs.QueueWarming)
	if err != nil || q.Pending != 5 {
		t.Fatalf("warming queue: %+v, %v; want 5 pending tasks", q, err)
	}

	for _, bad := range [][]string{
		{},
		{"--customers", "acme"},
		{"--customers", "acme", "--ranges", "last_decade"},
		{"--customers", "ac|me", "--ranges", "yesterday"},
		{"--customers", "acme", "--ranges", "yesterday", "--from", "2025-01-01", "--to", "2025-01-02"},
		{"--customers", "acme", "--from", "2025-02-01", "--to", "2025-01-01"},
		{"--nonsense"},
	} {
		if _, err := warm(bad...); err != ErrUsage {
			t.Errorf("warm %q: %v, want a usage error", bad, err)
		}
	}
}

// TestSchedulerWarmsThroughWorker: a plan firing every second enqueues its
// reports on the warming queue; the worker fills each once, and later firings
// of the still-cached reports make no BI call.
func TestSchedulerWarmsThroughWorker(t *testing.T) {
	redisURL, rdb := redistest.URLClient(t)
	bi := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	biServer := httptest.NewServer(bi.Handler())
	defer biServer.Close()
	plan := filepath.Join(t.TempDir(), "plan.yaml")
	os.WriteFile(plan, []byte(`
timezone: Europe/Berlin
plans:
  - name: often
    cron: "@every 1s"
    customers: [acme, globex]
    ranges: [yesterday]
`), 0o600)
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     redisURL,
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":  biServer.URL,
		"DASHCACHE_SCHEDULE_FILE": plan,
	}
	startRole(t, "worker", env)
	startRole(t, "scheduler", env)

	insp := asynq.NewInspectorFromRedisClient(rdb)
	// Wait (bounded) until at least three firings' tasks were processed.
	var q *asynq.QueueInfo
	var err error
	if !wait.Until(20*time.Second, func() bool {
		q, err = insp.GetQueueInfo(jobs.QueueWarming)
		return err == nil && q.Processed >= 6
	}) {
		t.Fatalf("warming queue after 20 s: %+v, %v", q, err)
	}
	if got := bi.Calls(); got != 2 {
		t.Fatalf("BI calls %d after 3 firings of 2 reports, want 2", got)
	}
}
