package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/roletest"
	"github.com/dashcache/dashcache/internal/wait"
)

// TestDrain: on SIGTERM (its context ends) an API process turns /readyz
// 503 at once and goes on serving reads for DASHCACHE_DRAIN, so that a
// load balancer following /readyz stops sending it requests before it
// stops accepting them; then it stops.
func TestDrain(t *testing.T) {
	env := map[string]string{
		"DASHCACHE_REDIS_URL": redistest.URL(t),
		"DASHCACHE_LISTEN":    "127.0.0.1:0",
		"DASHCACHE_DRAIN":     "3s",
	}
	term := make(chan struct{})
	addr := roletest.Start(t, "api", func(ctx context.Context, stdout io.Writer) error {
		ctx, stop := context.WithCancel(ctx)
		go func() {
			<-term
			stop() // as SIGTERM does
		}()
		return Run(ctx, []string{"api"}, func(k string) string { return env[k] }, stdout, io.Discard)
	}, nil)
	status := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := status("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before SIGTERM: %d %s", code, body)
	}
	sent := time.Now()
	close(term)
	wait.For(t, "/readyz to turn 503", 2*time.Second, func() bool {
		code, body := status("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down")
	})
	if code, body := status("/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31&wait=0s"); code != http.StatusAccepted {
		t.Errorf("a read while draining: %d %s, want it served (202)", code, body)
	}
	wait.For(t, "the listener to close after the drain", 10*time.Second, func() bool {
		code, _ := status("/healthz")
		return code == 0
	})
	if took := time.Since(sent); took < 3*time.Second {
		t.Errorf("stopped accepting %s after SIGTERM, before the 3 s drain", took.Round(time.Millisecond))
	}
}
