package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/provider"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// TestWorkerKilledMidCall: a worker process killed with -9 during its BI call
// leaves its task active in asynq for a minute or more. Readers who keep
// asking get the report from a rescue task as soon as the dead worker's lock
// expires, while asynq still holds the orphan, at the cost of one more BI call.
func TestWorkerKilledMidCall(t *testing.T) {
	redisURL := redistest.URL(t)
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	var calls atomic.Int64
	firstCall := make(chan struct{})
	bi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/query" && calls.Add(1) == 1 {
			close(firstCall)
			io.Copy(io.Discard, r.Body) // so that the server notices the caller's death
			<-r.Context().Done()        // hangs until its caller dies
			return
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	defer bi.Close()
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redisURL,
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}

	worker := exec.Command(binary(t), "worker")
	for k, v := range env {
		worker.Env = append(worker.Env, k+"="+v)
	}
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	defer worker.Process.Kill()
	apiAddr := startRole(t, "api", env)
	url := "http://" + apiAddr + "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31&wait=5s"
	get := func() int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := get(); s != http.StatusAccepted {
		t.Fatalf("first read: %d, want 202 while the BI call hangs", s)
	}
	select {
	case <-firstCall:
	case <-time.After(20 * time.Second):
		t.Fatal("the worker never called the BI platform")
	}
	worker.Process.Kill()
	worker.Wait()
	startRole(t, "worker", env)

	// Readers retry as a dashboard would after a 202, each waiting up to 5 s.
	deadline := time.Now().Add(60 * time.Second)
	for get() != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("no report a minute after the worker died")
		}
	}
	opt, _ := redis.ParseURL(redisURL)
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: opt.Addr, DB: opt.DB})
	defer insp.Close()
	k, _ := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", time.Now())
	if info, err := insp.GetTaskInfo(jobs.QueueInteractive, k.TaskID()); err != nil || info.State != asynq.TaskStateActive {
		t.Errorf("the dead worker's task: %v %v; want it still active (answered by the rescue, not by asynq's recovery)", info, err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("BI calls %d, want 2: the lost one and the rescue", n)
	}
}
