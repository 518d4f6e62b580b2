package api_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dashcache/dashcache/api"
)

func withKeys(t *testing.T, spec string) func(*api.Config) {
	keys, err := api.ParseAPIKeys(spec)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *api.Config) { c.Auth.APIKeys = keys }
}

// fakeUI stands for the asynq web UI mounted at /monitoring/: a page.
var fakeUI = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, "<!doctype html><title>queues</title>\n")
})

func TestParseAPIKeys(t *testing.T) {
	const k1, k2 = "key-one-0123456789", "key-two-0123456789"
	if _, err := api.ParseAPIKeys(k1 + "=acme|globex, " + k2 + "=*"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", k1, "=acme", k1 + "=", k1 + "=ac me", k1 + "=acme," + k1 + "=globex", k1 + "=acme,," + k2 + "=*",
		"short-key=acme", "a=*"} {
		_, err := api.ParseAPIKeys(bad)
		if err == nil {
			t.Errorf("ParseAPIKeys(%q) accepted it", bad)
		} else if strings.Contains(err.Error(), "key-one") || strings.Contains(err.Error(), "short-key") {
			t.Errorf("error %q repeats the key", err)
		}
	}
}

func TestReadAuthentication(t *testing.T) {
	f := newFixture(t, withKeys(t, "acme-key-0123456789=acme|initech,all-key-0123456789=*"))
	k := key(t, "acme", "2025-01-01", "2025-01-31")
	fill(t, f.store, k, `{"n":1}`)
	fill(t, f.store, key(t, "globex", "2025-01-01", "2025-01-31"), `{"n":2}`)
	q := "customer=acme&from=2025-01-01&to=2025-01-31"
	cases := []struct {
		name, query, auth string
		status            int
	}{
		{"no key", q, "", 401},
		{"wrong scheme", q, "Basic YWNtZS1rZXk6", 401},
		{"unknown key", q, "Bearer nope", 401},
		{"own customer", q, "Bearer acme-key-0123456789", 200},
		{"scheme case-insensitive", q, "bearer acme-key-0123456789", 200},
		{"other customer", "customer=globex&from=2025-01-01&to=2025-01-31", "Bearer acme-key-0123456789", 403},
		{"wildcard key", "customer=globex&from=2025-01-01&to=2025-01-31", "Bearer all-key-0123456789", 200},
		{"bad input with a valid key", "customer=acme", "Bearer acme-key-0123456789", 400},
		{"bad input without a key", "customer=acme", "", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.auth != "" {
				hdr = []string{"Authorization", c.auth}
			}
			resp, body := f.get(t, c.query, hdr...)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
			if c.status >= 400 && resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
	if f.enqueued.Load() != 0 {
		t.Error("a rejected read enqueued a task")
	}
}

func TestAdminGuard(t *testing.T) {
	monitoring := fakeUI
	f := newFixture(t, func(c *api.Config) { c.Auth.AdminToken = "s3cret"; c.Monitoring = monitoring })
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:s3cret"))
	wrongBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:nope"))
	for _, c := range []struct {
		auth   string
		status int
	}{{"", 401}, {wrongBasic, 401}, {"Bearer nope", 401}, {basic, 200}, {"Bearer s3cret", 200}} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		resp, body := f.do(t, http.MethodGet, "/monitoring/", "", hdr...)
		if resp.StatusCode != c.status {
			t.Errorf("/monitoring/ with %q: %d, want %d (%s)", c.auth, resp.StatusCode, c.status, body)
		}
		if c.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 without a Basic challenge: the browser would not ask")
		}
	}
}

func TestAdminLoopbackOnlyWithoutToken(t *testing.T) {
	// httptest serves on loopback, so the request is allowed...
	f := newFixture(t)
	resp, body := f.do(t, http.MethodPost, "/v1/warm", `{"customers":["acme"],"ranges":["yesterday"]}`)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("loopback warm without a token: %d %s", resp.StatusCode, body)
	}
	// ...and the same handler refuses a request from another host.
	req := httptest.NewRequest(http.MethodPost, "/v1/warm", strings.NewReader(`{}`))
	req.RemoteAddr = "192.0.2.7:5555"
	if resp := serveChecked(t, f.srv.Handler(), req); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("remote warm without a token: %d, want 403", resp.StatusCode)
	}
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *recorder) WriteHeader(s int)           { r.status = s }

func TestWarmEndpoint(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.Auth.AdminToken = "s3cret" })
	auth := []string{"Authorization", "Bearer s3cret"}
	resp, body := f.do(t, http.MethodPost, "/v1/warm", `{"customers":["acme","busy"],"ranges":["yesterday","last_7_days"]}`, auth...)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var out struct {
		Keys                []struct{ Key, Result string }
		Enqueued, Duplicate int
	}
	json.Unmarshal([]byte(body), &out)
	want := []string{"acme|2025-03-09|2025-03-09", "acme|2025-03-03|2025-03-09", "busy|2025-03-09|2025-03-09", "busy|2025-03-03|2025-03-09"}
	if len(out.Keys) != 4 || out.Enqueued != 2 || out.Duplicate != 2 {
		t.Fatalf("response %s", body)
	}
	for i, k := range out.Keys {
		wantRes := "enqueued"
		if strings.HasPrefix(k.Key, "busy") {
			wantRes = "duplicate"
		}
		if k.Key != want[i] || k.Result != wantRes {
			t.Errorf("key %d: %+v, want %s %s", i, k, want[i], wantRes)
		}
	}

	for _, c := range []struct{ body, detail string }{
		{`not json`, "must be JSON"},
		{`{"customers":["acme"],"ranges":["yesterday"],"colour":"red"}`, "unknown field"},
		{`{"customers":[],"ranges":["yesterday"]}`, "customers is required"},
		{`{"customers":["acme"]}`, "either ranges"},
		{`{"customers":["acme"],"ranges":["yesterday"],"from":"2025-01-01","to":"2025-01-02"}`, "either ranges"},
		{`{"customers":["acme"],"ranges":["last_decade"]}`, "last_decade"},
		{`{"customers":["ac|me"],"ranges":["yesterday"]}`, "may contain only"},
		{`{"customers":["acme"],"from":"2025-02-01","to":"2025-01-01"}`, "must not be after"},
	} {
		resp, body := f.do(t, http.MethodPost, "/v1/warm", c.body, auth...)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, c.detail) {
			t.Errorf("body %s: %d %s, want 400 mentioning %q", c.body, resp.StatusCode, body, c.detail)
		}
	}
	resp, _ = f.do(t, http.MethodPost, "/v1/warm", `{"customers":["`+strings.Repeat("a", 70000)+`"]}`, auth...)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d, want 413", resp.StatusCode)
	}
	resp, _ = f.do(t, http.MethodGet, "/v1/warm", "", auth...)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/warm: %d, want 405", resp.StatusCode)
	}
	if calls := f.warmed(); len(calls) != 4 {
		t.Errorf("Warm called for %v; only the good request may enqueue", calls)
	}
}

func TestAdminRefusesCrossSiteChanges(t *testing.T) {
	f := newFixture(t, func(c *api.Config) { c.Auth.AdminToken = "s3cret" })
	body := `{"customers":["acme"],"ranges":["yesterday"]}`
	auth := []string{"Authorization", "Bearer s3cret"}
	resp, _ := f.do(t, http.MethodPost, "/v1/warm", body, append(auth, "Origin", "https://evil.example")...)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site POST: %d, want 403", resp.StatusCode)
	}
	resp, _ = f.do(t, http.MethodPost, "/v1/warm", body, append(auth, "Origin", f.url)...)
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("same-origin POST: %d, want 202", resp.StatusCode)
	}
}

// TestAdminNeedsTheToken: with an admin token, each admin endpoint refuses
// a request without it (401, with a Basic challenge for the browser), and a
// change from another site's page even with it (403).
func TestAdminNeedsTheToken(t *testing.T) {
	f := newFixture(t, withAdminToken)
	body := map[string]string{
		"/v1/warm":       `{"customers":["acme"],"ranges":["yesterday"]}`,
		"/v1/invalidate": `{"customers":["acme"],"from":"2025-01-20","to":"2025-01-20"}`,
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/v1/warm"}, {http.MethodPost, "/v1/invalidate"}, {http.MethodGet, "/v1/usage"},
	} {
		resp, answer := f.do(t, c.method, c.path, body[c.path])
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s %s without the token: %d %q %s, want 401 with a Basic challenge", c.method, c.path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), answer)
		}
		if c.method == http.MethodGet {
			continue
		}
		resp, answer = f.do(t, c.method, c.path, body[c.path], "Authorization", "Bearer "+adminToken, "Origin", "https://evil.example")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s from another site's page: %d %s, want 403", c.method, c.path, resp.StatusCode, answer)
		}
	}
	if n := len(f.warmed()) + len(f.invalidations); n != 0 {
		t.Errorf("%d refused requests reached the queue", n)
	}
}

// TestAdminThrottled: an address that failed to authenticate more than 10
// times within a minute is answered 429 with Retry-After on every path
// that takes the admin token, right token or not.
func TestAdminThrottled(t *testing.T) {
	f := newFixture(t, withAdminToken, func(c *api.Config) { c.Monitoring, c.Metrics = fakeUI, fakeUI })
	for i := range 10 {
		if resp, _ := f.do(t, http.MethodGet, "/v1/usage", "", "Authorization", fmt.Sprintf("Bearer guess-%d", i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d, want 401", i, resp.StatusCode)
		}
	}
	auth := []string{"Authorization", "Bearer " + adminToken}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/warm", `{"customers":["acme"],"ranges":["yesterday"]}`},
		{http.MethodPost, "/v1/invalidate", `{"customers":["acme"],"from":"2025-01-20","to":"2025-01-20"}`},
		{http.MethodGet, "/v1/usage", ""},
		{http.MethodGet, "/monitoring/", ""},
		{http.MethodGet, "/metrics", ""},
	} {
		resp, body := f.do(t, c.method, c.path, c.body, auth...)
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s after 10 failures: %d Retry-After %q %s, want 429", c.method, c.path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
}
