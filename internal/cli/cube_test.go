package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/cubetest"
	"github.com/dashcache/dashcache/internal/redistest"
)

// TestCubeThroughTheService: a worker and an API whose catalogue has a cube
// back end serve 3 concurrent readers of one report. The fake Cube checks
// every token (signed with the secret, HS256, not expired, its customer
// the one the query's filter reads) and answers "Continue wait" twice,
// then the data: every reader gets Cube's data, Cube counts 3 requests of
// one load (one x-request-id), and GET /v1/usage counts 1 call for the
// customer. The secret is testSecret, which no role may log.
func TestCubeThroughTheService(t *testing.T) {
	cube := &cubetest.Server{Secret: testSecret, Answer: cubetest.WaitThenData(2)}
	srv := cubetest.Start(t, cube)
	query, _ := json.Marshal(`{"measures": ["Orders.count", "Orders.total"],
	  "filters": [{"member": "Orders.customer", "operator": "equals", "values": ["@customer"]}],
	  "timeDimensions": [{"dimension": "Orders.createdAt", "dateRange": ["@from", "@to"], "granularity": "day"}]}`)
	catalogue := filepath.Join(t.TempDir(), "reports.yaml")
	if err := os.WriteFile(catalogue, fmt.Appendf(nil, `
backends:
  olap: {type: cube, url: %q, secret_env: CUBE_SECRET}
reports:
  orders: {backend: olap, query: %s}
`, srv.URL, query), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"DASHCACHE_REDIS_URL":     redistest.URL(t),
		"DASHCACHE_LISTEN":        "127.0.0.1:0",
		"DASHCACHE_REPORTS_FILE":  catalogue,
		"CUBE_SECRET":             testSecret,
		"DASHCACHE_PROVIDER_RATE": "100",
	}
	startRole(t, "worker", env)
	api := startRole(t, "api", env)

	start := time.Now()
	reads := make([]read, 3)
	var wg sync.WaitGroup
	for i := range reads {
		wg.Go(func() { reads[i] = getPath(t, api, "/v1/reports/orders", "acme", "2025-01-01", "2025-01-31", "20s") })
	}
	wg.Wait()
	for i, r := range reads {
		if r.status != http.StatusOK || !strings.HasPrefix(r.body, `{"report":"orders","customer":"acme",`) ||
			!strings.Contains(r.body, `"data":`+cubetest.Data) {
			t.Errorf("reader %d: %d %s; want 200 with Cube's data %s", i+1, r.status, r.body, cubetest.Data)
		}
	}

	loads := cube.Loads()
	if len(loads) != 3 {
		t.Fatalf("Cube saw %d load requests, want 3: two answered Continue wait, then the data", len(loads))
	}
	if err := cubetest.OneCall(loads); err != nil {
		t.Errorf("Cube's requests are not one load asked again: %v", err)
	}
	for i, l := range loads {
		if l.Claims["customer"] != "acme" {
			t.Errorf("request %d: the token's customer is %v, want acme", i+1, l.Claims["customer"])
		}
		// The fake refused an expired token; this one lives no longer
		// than the call's timeout (60s) and a minute of grace.
		if exp, err := l.Claims.GetExpirationTime(); err != nil || exp == nil || exp.After(start.Add(2*time.Minute+time.Second)) {
			t.Errorf("request %d: exp %v (%v), want within 2 minutes of the read", i+1, exp, err)
		}
	}

	resp, err := http.Get("http://" + api + "/v1/usage")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var usage struct {
		Customers []struct {
			Customer string
			Calls    int64
			Reports  map[string]int64
		}
	}
	if err := json.Unmarshal(body, &usage); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/usage: %d %v: %s", resp.StatusCode, err, body)
	}
	if len(usage.Customers) != 1 || usage.Customers[0].Customer != "acme" || usage.Customers[0].Calls != 1 ||
		usage.Customers[0].Reports["orders"] != 1 {
		t.Errorf("GET /v1/usage: %s; want 1 call of orders for acme", body)
	}
}
