package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/front/fronttest"
	"github.com/valyala/fasthttp"
)

// adminToken is the admin token of the fixtures of this file.
const adminToken = "admin-token-0123456789"

// withAdminToken sets the fixture's admin token to adminToken.
func withAdminToken(c *api.Config) { c.Auth.AdminToken = adminToken }

// TestOversizedAdminBodyRefused: POST /v1/invalidate with the admin token
// and a body of 200 KB (past MaxAdminBody) is refused with a 413
// problem+json that reaches the client, though it is still sending when
// the refusal is written: 50 of 50, each on a connection of its own, none
// reset. No invalidation runs.
func TestOversizedAdminBodyRefused(t *testing.T) {
	f := newFixture(t, withAdminToken)
	addr := strings.TrimPrefix(f.url, "http://")
	body := `{"customers":["` + strings.Repeat("a", 200<<10-20) + `"]}`
	raw := fmt.Sprintf("POST /v1/invalidate HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, adminToken, len(body), body)
	var refused, cut int
	for range 50 {
		status, h, answer, err := fronttest.Send(addr, raw)
		switch {
		case err != nil:
			if cut == 0 {
				t.Log(err)
			}
			cut++
		case status == http.StatusRequestEntityTooLarge && h.Get("Content-Type") == "application/problem+json" && strings.Contains(answer, fmt.Sprint(api.MaxAdminBody)):
			refused++
		default:
			t.Errorf("%d %q %q, want 413 problem+json naming the bound", status, h.Get("Content-Type"), answer)
		}
	}
	if refused != 50 {
		t.Errorf("50 POSTs of 200 KB: %d answers of 413, %d cut short (reset or broken pipe); want 50 answers", refused, cut)
	}
	if n := len(f.invalidations); n != 0 {
		t.Errorf("%d invalidations ran", n)
	}
}

// frontWatched serves f's server through a front of its own, as
// serveFront does, and returns its address, a count of the requests the
// fast path answered, and the paths the slow handler was given.
func frontWatched(t *testing.T, f *fixture) (addr string, fast *atomic.Int64, slowPaths func() []string) {
	t.Helper()
	fast = new(atomic.Int64)
	var mu sync.Mutex
	var paths []string
	addr = serveFront(t, func(c *fasthttp.RequestCtx) bool {
		served := f.srv.ServeFast(c)
		if served {
			fast.Add(1)
		}
		return served
	}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		f.srv.Handler().ServeHTTP(w, r)
	}))
	return addr, fast, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(paths)
	}
}

// TestPipelinedAfterHit: an admin request without the token, pipelined on
// a connection right after a read the fast path answers from L1, is
// refused 401 like any other: the fast path's answer leaves nothing of
// its request's authority to the next one.
func TestPipelinedAfterHit(t *testing.T) {
	f := newFixture(t, withAdminToken, func(c *api.Config) { c.L1Bytes = 1 << 20 })
	f.fillSeen(t, key(t, "acme", "2025-01-01", "2025-01-31"), `{"n":1}`, now.Add(-3*time.Second), time.Hour)
	read := "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31"
	if resp, _ := f.do(t, http.MethodGet, read, ""); resp.StatusCode != http.StatusOK { // into L1
		t.Fatalf("first read: %d", resp.StatusCode)
	}
	addr, fast, slowPaths := frontWatched(t, f)
	body := `{"customers":"*","from":"2025-01-01","to":"2025-01-31"}`
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", read, addr)
	fmt.Fprintf(c, "GET /v1/usage HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	fmt.Fprintf(c, "POST /v1/invalidate HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", addr, len(body), body)
	r := bufio.NewReader(c)
	for i, want := range []int{http.StatusOK, http.StatusUnauthorized, http.StatusUnauthorized} {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("answer %d: %d %s, want %d", i+1, resp.StatusCode, b, want)
		}
		if i == 0 && (resp.Header.Get("X-Cache") != "hit" || fast.Load() != 1) {
			t.Errorf("the read: X-Cache %q, %d answered by the fast path; want a hit, answered there", resp.Header.Get("X-Cache"), fast.Load())
		}
	}
	if got := slowPaths(); !slices.Equal(got, []string{"/v1/usage", "/v1/invalidate"}) {
		t.Errorf("the slow handler was given %q, want the two admin requests", got)
	}
	if n := len(f.invalidations); n != 0 {
		t.Errorf("%d invalidations ran without the token", n)
	}
}

// TestDotSegmentsToAdmin: a path that would reach an admin route through
// dot segments, encoded ones or an empty segment is made that route's
// before the handlers see it (fasthttp cleans it), and so meets the admin
// guard: 401 without the token, served with it.
func TestDotSegmentsToAdmin(t *testing.T) {
	f := newFixture(t, withAdminToken)
	addr, fast, slowPaths := frontWatched(t, f)
	for _, path := range []string{
		"/v1/reports/../usage",
		"/v1/reports/..%2fusage",
		"/v1/reports/%2e%2e/usage",
		"/v1/reports%2f..%2fusage",
		"//v1/usage",
		"/v1/./usage",
	} {
		for _, withToken := range []bool{false, true} {
			auth := ""
			if withToken {
				auth = "Authorization: Bearer " + adminToken + "\r\n"
			}
			status, _, body, err := fronttest.Send(addr, fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", path, addr, auth))
			switch {
			case err != nil:
				t.Errorf("GET %s: %v", path, err)
			case !withToken && (status != http.StatusUnauthorized || strings.Contains(body, "daily_calls")):
				t.Errorf("GET %s without the token: %d %s, want 401", path, status, body)
			case withToken && (status != http.StatusOK || !strings.Contains(body, "daily_calls")):
				t.Errorf("GET %s with the token: %d %s, want the usage", path, status, body)
			}
		}
	}
	if n := fast.Load(); n != 0 {
		t.Errorf("the fast path answered %d of them", n)
	}
	for _, p := range slowPaths() {
		if p != "/v1/usage" {
			t.Errorf("the slow handler was given %q, want /v1/usage each time", p)
		}
	}
}
