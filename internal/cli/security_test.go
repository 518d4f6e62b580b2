package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/dashcache/dashcache/internal/redistest"
)

// TestSettingsErrorsRedactCredentials: a bad URL setting is named in the
// error without its password; short secrets are refused, never repeated.
func TestSettingsErrorsRedactCredentials(t *testing.T) {
	const secret = "s3cretpw-0123456789"
	for name, value := range map[string]string{
		"DASHCACHE_PROVIDER_URL":    "ftp://bi:" + secret + "@bi.example/x",
		"DASHCACHE_REDIS_URL":       "http://u:" + secret + "@redis.example:6379/0",
		"DASHCACHE_CACHE_REDIS_URL": "redis://u:" + secret + "@%zz",
		// A URL pasted where addresses belong, and passwords given without
		// Sentinel.
		"DASHCACHE_REDIS_SENTINEL_ADDRS":    "redis://:" + secret + "@sentinel",
		"DASHCACHE_REDIS_SENTINEL_PASSWORD": secret,
		"DASHCACHE_CACHE_REDIS_PASSWORD":    secret,
	} {
		_, err := LoadConfig("all", func(k string) string { return map[string]string{name: value}[k] })
		if err == nil || !strings.Contains(err.Error(), name) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v; want an error naming it, without the password", name, err)
		}
	}
	for name, value := range map[string]string{
		"DASHCACHE_ADMIN_TOKEN": "short-token",
		"DASHCACHE_API_KEYS":    "short-key=*",
	} {
		_, err := LoadConfig("all", func(k string) string { return map[string]string{name: value}[k] })
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "at least 16") || strings.Contains(err.Error(), "short-") {
			t.Errorf("%s=%s: %v; want it refused as too short, not repeated", name, value, err)
		}
	}
}

// TestHugeHeaderRefused: a request header past a few tens of KiB is refused
// before any handler sees it.
func TestHugeHeaderRefused(t *testing.T) {
	addr := startRole(t, "all", map[string]string{"DASHCACHE_LISTEN": "127.0.0.1:0", "DASHCACHE_SIM_LATENCY": "0s"})
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 64 KiB header: %d, want 431", resp.StatusCode)
	}
}

// TestRedirectingBIPlatform: a BI platform that answers with a redirect
// (here to a metadata-style URL) gets no second request there: the token
// never leaves for the other host, the reader gets 502 naming the redirect,
// and nothing is cached.
func TestRedirectingBIPlatform(t *testing.T) {
	const token = "bi-token-0123456789"
	var stolen atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		io.WriteString(w, `{"AccessKeyId":"AKIA..."}`)
	}))
	defer elsewhere.Close()
	bi := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/latest/meta-data/iam", http.StatusFound)
	}))
	defer bi.Close()
	env := map[string]string{
		"DASHCACHE_REDIS_URL":      redistest.URL(t),
		"DASHCACHE_LISTEN":         "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL":   bi.URL,
		"DASHCACHE_PROVIDER_TOKEN": token,
	}
	startRole(t, "worker", env)
	addr := startRole(t, "api", env)
	for range 2 {
		r := get(t, addr, "acme", "2025-01-01", "2025-01-31", "10s")
		if r.status != http.StatusBadGateway || !strings.Contains(r.body, "HTTP 302") {
			t.Errorf("read: %d %s; want 502 naming the redirect", r.status, r.body)
		}
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}
