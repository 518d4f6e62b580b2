package deployments_test

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
)

// A node is one dashcache process of a deployment: one container.
type node struct {
	group    string // compose service or Kubernetes Deployment
	role     string
	env      map[string]string
	schedule []byte // the contents of DASHCACHE_SCHEDULE_FILE, if set
}

// runHere runs the nodes of a deployment as processes on this machine, with
// their own settings except for what only the network of a container gives:
// every listener is on 127.0.0.1:0, DASHCACHE_REDIS_URL is a database of the
// test Redis, a DASHCACHE_PROVIDER_URL names the address of the node that
// hosts[its host] names, the schedule file is a temporary copy, and the
// simulated BI platform answers in 10 ms. Then it reads one report through
// every API node (the first read fills it through a worker and the BI node,
// the others hit), and checks that keys, admin token and readiness work as
// the settings say.
//
// Fill notifications are Redis pub/sub messages, which every database of a
// Redis server sees; so each caller reads a report of its own (fallback: the
// customer when the first API key reads every customer), which no other test
// running at the same time fills.
func runHere(t *testing.T, nodes []node, hosts map[string]string, fallback string) {
	redisURL := redistest.URL(t)
	dir := t.TempDir()
	order := []string{"fakebi", "worker", "scheduler", "api"}
	slices.SortStableFunc(nodes, func(a, b node) int {
		return slices.Index(order, a.role) - slices.Index(order, b.role)
	})
	addrs := map[string]string{} // group -> address of its first node
	var apis []node
	var apiAddrs []string
	served := map[string]map[string]string{} // address of a node that serves /metrics -> its settings
	for i, n := range nodes {
		name := fmt.Sprintf("%s #%d", n.group, i)
		env := maps.Clone(n.env)
		env["DASHCACHE_LISTEN"] = "127.0.0.1:0"
		if env["DASHCACHE_REDIS_URL"] != "" {
			env["DASHCACHE_REDIS_URL"] = redisURL
		}
		if n.role == "fakebi" {
			env["DASHCACHE_SIM_LATENCY"] = "10ms"
		}
		if p := env["DASHCACHE_PROVIDER_URL"]; p != "" {
			u, err := url.Parse(p)
			if err != nil {
				t.Fatalf("%s: DASHCACHE_PROVIDER_URL: %v", name, err)
			}
			addr, ok := addrs[hosts[u.Hostname()]]
			if !ok {
				t.Fatalf("%s: DASHCACHE_PROVIDER_URL %s names no BI node of the deployment", name, p)
			}
			u.Host = addr
			env["DASHCACHE_PROVIDER_URL"] = u.String()
		}
		if n.schedule != nil {
			path := filepath.Join(dir, fmt.Sprintf("schedule-%d.yaml", i))
			if err := os.WriteFile(path, n.schedule, 0o644); err != nil {
				t.Fatal(err)
			}
			env["DASHCACHE_SCHEDULE_FILE"] = path
		}
		addr := start(t, name, n.role, env)
		if _, ok := addrs[n.group]; !ok {
			addrs[n.group] = addr
		}
		switch n.role {
		case "api":
			apis, apiAddrs = append(apis, n), append(apiAddrs, addr)
			served[addr] = env
		case "worker", "scheduler":
			served[addr] = env
		}
	}
	if len(apis) < 2 {
		t.Fatalf("%d API nodes, want at least 2", len(apis))
	}

	key, customers, _ := strings.Cut(strings.Split(apis[0].env["DASHCACHE_API_KEYS"], ",")[0], "=")
	customer, _, _ := strings.Cut(customers, "|")
	if customer == "*" {
		customer = fallback
	}
	report := "/v1/reports?customer=" + customer + "&from=2025-01-01&to=2025-01-31&wait=15s"
	for i, addr := range apiAddrs {
		want := "hit"
		if i == 0 {
			want = "miss"
		}
		resp := do(t, "GET", "http://"+addr+report, "Bearer "+key, "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Cache") != want {
			t.Errorf("API node %d: GET %s with a key of DASHCACHE_API_KEYS: %s X-Cache %q, want 200 %s", i, report, resp.Status, resp.Header.Get("X-Cache"), want)
		}
	}
	if resp := do(t, "GET", "http://"+apiAddrs[0]+report, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s without a key: %s, want 401", report, resp.Status)
	}
	warm := `{"customers":["` + customer + `"],"ranges":["yesterday"]}`
	if resp := do(t, "POST", "http://"+apiAddrs[1]+"/v1/warm", "", warm); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /v1/warm without DASHCACHE_ADMIN_TOKEN: %s, want 401", resp.Status)
	}
	if resp := do(t, "POST", "http://"+apiAddrs[1]+"/v1/warm", "Bearer "+apis[1].env["DASHCACHE_ADMIN_TOKEN"], warm); resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /v1/warm with DASHCACHE_ADMIN_TOKEN: %s, want 202", resp.Status)
	}
	for addr, env := range served {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			want := http.StatusOK
			if path == "/metrics" && env["DASHCACHE_ADMIN_TOKEN"] != "" && env["DASHCACHE_METRICS_PUBLIC"] != "true" {
				want = http.StatusUnauthorized // and with the token, as Prometheus sends it:
				if resp := do(t, "GET", "http://"+addr+path, "Bearer "+env["DASHCACHE_ADMIN_TOKEN"], ""); resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s on %s with DASHCACHE_ADMIN_TOKEN: %s, want 200", path, addr, resp.Status)
				}
			}
			if resp := do(t, "GET", "http://"+addr+path, "", ""); resp.StatusCode != want {
				t.Errorf("GET %s on %s: %s, want %d", path, addr, resp.Status, want)
			}
		}
	}
}

// do makes one request and returns the response with its body read.
func do(t *testing.T, method, url, auth, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestComposeRunsHere runs compose.yaml's dashcache services, with their
// settings, as processes on a real Redis (see runHere).
func TestComposeRunsHere(t *testing.T) {
	t.Parallel()
	services := loadCompose(t)
	var nodes []node
	hosts := map[string]string{}
	for name, s := range services {
		if !isDashcacheImage(s.Image) || len(s.Command) != 1 {
			continue
		}
		hosts[name] = name
		n := node{group: name, role: s.Command[0], env: s.Environment}
		if file := s.Environment["DASHCACHE_SCHEDULE_FILE"]; file != "" {
			src, err := composeMount(file, s.Volumes)
			if err != nil {
				t.Fatalf("compose service %s: %v", name, err)
			}
			n.schedule = readFile(t, src)
		}
		for range s.replicas() {
			nodes = append(nodes, n)
		}
	}
	runHere(t, nodes, hosts, "deployments-compose")
}

// TestKubernetesRunsHere runs the dashcache containers of the Kubernetes
// manifests, with the settings their env, ConfigMaps and Secret give them, as
// processes on a real Redis (see runHere).
func TestKubernetesRunsHere(t *testing.T) {
	t.Parallel()
	k := loadKubernetes(t)
	var nodes []node
	hosts := map[string]string{}
	for _, d := range k.deployments {
		for svc, s := range k.services {
			if k.selectsDeployment(s, d) {
				hosts[svc] = d.Metadata.Name
			}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if !isDashcacheImage(c.Image) || len(c.Args) != 1 {
				continue
			}
			env, problems := k.env(c)
			if len(problems) > 0 {
				t.Fatalf("Deployment %s: %v", d.Metadata.Name, problems)
			}
			n := node{group: d.Metadata.Name, role: c.Args[0], env: env}
			if file := env["DASHCACHE_SCHEDULE_FILE"]; file != "" {
				data, err := k.scheduleFile(file, c, d)
				if err != nil {
					t.Fatalf("Deployment %s: %v", d.Metadata.Name, err)
				}
				n.schedule = data
			}
			for range max(d.Spec.Replicas, 1) {
				nodes = append(nodes, n)
			}
		}
	}
	runHere(t, nodes, hosts, "deployments-kubernetes")
}
