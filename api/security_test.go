package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/dashcache/dashcache/api"
	"github.com/rs/zerolog"
)

// send sends a request to the fixture naming host in its Host header, with
// header name/value pairs.
func (f *fixture) send(t *testing.T, method, path, host, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.url+path, strings.NewReader(body))
	req.Host = host
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.String()
}

// TestDNSRebinding: without API keys and an admin token, a request that
// names a host other than a loopback one or an allowed one (a page of
// another site whose name now resolves to 127.0.0.1) is refused on reads and
// on every admin path, though it comes from loopback; an admin change whose
// Origin names such a host is refused even with the token.
func TestDNSRebinding(t *testing.T) {
	monitoring := fakeUI
	f := newFixture(t, func(c *api.Config) {
		c.Monitoring = monitoring
		c.Auth.AllowedHosts = []string{"dash.internal"}
	})
	fill(t, f.store, key(t, "acme", "2025-01-01", "2025-01-31"), `{}`)
	read := "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31"
	warm := `{"customers":["acme"],"ranges":["yesterday"]}`
	for _, c := range []struct {
		method, path, body string
	}{
		{http.MethodGet, read, ""},
		{http.MethodPost, "/v1/warm", warm},
		{http.MethodGet, "/v1/usage", ""},
		{http.MethodGet, "/monitoring/", ""},
		{http.MethodDelete, "/monitoring/api/queues/warming", ""},
	} {
		for host, want := range map[string]bool{
			"rebind.attacker.example:8080": false,
			"127.0.0.1.attacker.example":   false,
			"localhost:8080":               true,
			"127.0.0.1:8080":               true,
			"[::1]:8080":                   true,
			"DASH.internal:8080":           true,
		} {
			resp, body := f.send(t, c.method, c.path, host, c.body, "Origin", "http://"+host)
			refused := resp.StatusCode == http.StatusForbidden && strings.Contains(body, "DASHCACHE_ALLOWED_HOSTS")
			if refused == want || resp.Header.Get("Content-Type") == "application/problem+json" && want {
				t.Errorf("%s %s with Host %s: %d %s; want it %s", c.method, c.path, host, resp.StatusCode, body,
					map[bool]string{true: "served", false: "refused as problem+json naming DASHCACHE_ALLOWED_HOSTS"}[want])
			}
		}
	}
	if calls := f.warmed(); len(calls) != 4 {
		t.Errorf("%d warm calls, want 4: one per allowed host", len(calls))
	}

	g := newFixture(t, func(c *api.Config) { c.Auth.AdminToken = "admin-token-0123456789" })
	auth := []string{"Authorization", "Bearer admin-token-0123456789"}
	resp, _ := g.send(t, http.MethodPost, "/v1/warm", "rebind.attacker.example:8080", warm, append(auth, "Origin", "http://rebind.attacker.example:8080")...)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a change from a rebinding page's origin, with the token: %d, want 403", resp.StatusCode)
	}
	resp, _ = g.send(t, http.MethodPost, "/v1/warm", "dash.example.com", warm, auth...)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("a change with the token and no Origin (curl), any Host: %d, want 202", resp.StatusCode)
	}
}

// TestSecurityHeaders: every answer says nosniff; admin answers cannot be
// framed.
func TestSecurityHeaders(t *testing.T) {
	monitoring := fakeUI
	f := newFixture(t, func(c *api.Config) { c.Monitoring = monitoring })
	fill(t, f.store, key(t, "acme", "2025-01-01", "2025-01-31"), `{}`)
	for _, path := range []string{"/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31", "/v1/reports?customer=", "/nowhere", "/monitoring/", "/v1/usage"} {
		resp, _ := f.do(t, http.MethodGet, path, "")
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no X-Content-Type-Options: nosniff", path)
		}
		admin := strings.HasPrefix(path, "/monitoring") || path == "/v1/usage"
		if admin && (resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Content-Security-Policy") != "frame-ancestors 'none'") {
			t.Errorf("%s: frame headers %q %q", path, resp.Header.Get("X-Frame-Options"), resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// TestMetricsNeedTheAdminToken: with an admin token set, /metrics needs it
// (Prometheus sends it as a bearer token), unless it is made public; without
// one it is open.
func TestMetricsNeedTheAdminToken(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("# metrics")) })
	for _, c := range []struct {
		token      string
		public     bool
		auth       string
		wantStatus int
	}{
		{"admin-token-0123456789", false, "", 401},
		{"admin-token-0123456789", false, "Bearer admin-token-0123456789", 200},
		{"admin-token-0123456789", true, "", 200},
		{"", false, "", 200},
	} {
		f := newFixture(t, func(cfg *api.Config) {
			cfg.Auth.AdminToken, cfg.Auth.MetricsPublic, cfg.Metrics = c.token, c.public, metrics
		})
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		if resp, _ := f.do(t, http.MethodGet, "/metrics", "", hdr...); resp.StatusCode != c.wantStatus {
			t.Errorf("token %q public %v auth %q: %d, want %d", c.token, c.public, c.auth, resp.StatusCode, c.wantStatus)
		}
	}
}

// TestFailedAuthThrottled: an address that fails to authenticate more than
// 10 times in a minute is answered 429 with Retry-After, right key or not;
// other addresses are not.
func TestFailedAuthThrottled(t *testing.T) {
	f := newFixture(t, withKeys(t, "acme-key-0123456789=acme"))
	q := "customer=acme&from=2025-01-01&to=2025-01-31&wait=0s"
	for i := range 10 {
		if resp, _ := f.get(t, q, "Authorization", "Bearer guess-"+string(rune('a'+i))); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, resp.StatusCode)
		}
	}
	resp, body := f.get(t, q, "Authorization", "Bearer acme-key-0123456789")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "failed authentications") {
		t.Errorf("after 10 failures: %d Retry-After %q %s; want 429", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	// The throttle is per address: a request from elsewhere goes through.
	req, _ := http.NewRequest(http.MethodGet, "/v1/reports?"+q, nil)
	req.RemoteAddr = "192.0.2.7:5555"
	req.Header.Set("Authorization", "Bearer acme-key-0123456789")
	if resp := serveChecked(t, f.srv.Handler(), req); resp.StatusCode != http.StatusAccepted {
		t.Errorf("another address: %d, want 202", resp.StatusCode)
	}
}

// TestAccessLogBounded: a huge query or user agent grows the log by a
// bounded amount, and the line says it was cut.
func TestAccessLogBounded(t *testing.T) {
	var logs syncBuffer
	f := newFixture(t, func(c *api.Config) { c.Log = zerolog.New(&logs) })
	f.get(t, "customer=acme&x="+strings.Repeat("a", 20000), "User-Agent", strings.Repeat("b", 10000)) // within the 32 KiB a header may have
	line := logs.String()
	if len(line) > 4000 || strings.Count(line, "truncated from") != 2 {
		t.Errorf("access log line of %d bytes: %.300s", len(line), line)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
