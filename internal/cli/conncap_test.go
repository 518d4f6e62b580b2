package cli

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/roletest"
	"github.com/dashcache/dashcache/internal/wait"
)

// TestConfigConnCaps: the connection caps default to 10,000 and 1,000 a
// client address, take 0 for no cap, and a bad value is named.
func TestConfigConnCaps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env            map[string]string
		max, maxPerIP  int
		wantErr, wantX string
	}{
		{env: nil, max: 10_000, maxPerIP: 1_000},
		{env: map[string]string{"DASHCACHE_MAX_CONNS": "5", "DASHCACHE_MAX_CONNS_PER_IP": "3"}, max: 5, maxPerIP: 3},
		{env: map[string]string{"DASHCACHE_MAX_CONNS": "0", "DASHCACHE_MAX_CONNS_PER_IP": "0"}, max: 0, maxPerIP: 0},
		{env: map[string]string{"DASHCACHE_MAX_CONNS": "-1"}, wantErr: `DASHCACHE_MAX_CONNS: want a whole number of connections, such as 10000 (0: no cap), got "-1"`},
		{env: map[string]string{"DASHCACHE_MAX_CONNS_PER_IP": "1k"}, wantErr: `DASHCACHE_MAX_CONNS_PER_IP: want a whole number of connections, such as 10000 (0: no cap), got "1k"`},
		{env: map[string]string{"DASHCACHE_MAX_CONNS": "many", "DASHCACHE_MAX_CONNS_PER_IP": "1.5"}, wantErr: "DASHCACHE_MAX_CONNS: ", wantX: "DASHCACHE_MAX_CONNS_PER_IP: "},
	} {
		c, err := LoadConfig("fakebi", func(k string) string { return tc.env[k] })
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), tc.wantX)):
			t.Errorf("%v: error %v, want one with %q and %q", tc.env, err, tc.wantErr, tc.wantX)
		case tc.wantErr == "" && (c.MaxConns != tc.max || c.MaxConnsPerIP != tc.maxPerIP):
			t.Errorf("%v: caps %d, %d a client address; want %d, %d", tc.env, c.MaxConns, c.MaxConnsPerIP, tc.max, tc.maxPerIP)
		}
	}
}

// TestConnCap: an API process (its listener on fasthttp) and a worker (on
// net/http), with DASHCACHE_MAX_CONNS=5 and DASHCACHE_MAX_CONNS_PER_IP=3,
// serve connections within the caps, each kept open after a request;
// refuse one past either cap with a 503 problem+json that names the
// setting; and serve again once a connection has closed. Clients come from
// 127.0.0.1 and 127.0.0.2.
func TestConnCap(t *testing.T) {
	redisURL := redistest.URL(t)
	for _, role := range []string{"api", "worker"} {
		t.Run(role, func(t *testing.T) {
			env := map[string]string{
				"DASHCACHE_REDIS_URL":        redisURL,
				"DASHCACHE_LISTEN":           "127.0.0.1:0",
				"DASHCACHE_MAX_CONNS":        "5",
				"DASHCACHE_MAX_CONNS_PER_IP": "3",
				"DASHCACHE_DRAIN":            "0s",
			}
			addr := roletest.Start(t, role, func(ctx context.Context, stdout io.Writer) error {
				return Run(ctx, []string{role}, func(k string) string { return env[k] }, stdout, io.Discard)
			}, nil)
			var open []net.Conn
			t.Cleanup(func() {
				for _, c := range open {
					c.Close()
				}
			})
			// get asks for /healthz on a new connection from ip, and keeps
			// the connection open if it was served.
			get := func(ip string) (status int, contentType, body string) {
				t.Helper()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					c.Close()
					t.Fatalf("from %s: %v", ip, err)
				}
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode == http.StatusOK {
					open = append(open, c)
				} else {
					c.Close()
				}
				return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
			}
			want := func(ip string, status int, setting string) {
				t.Helper()
				got, ct, body := get(ip)
				switch {
				case got != status:
					t.Errorf("from %s: %d %s, want %d", ip, got, body, status)
				case status == http.StatusServiceUnavailable &&
					(ct != "application/problem+json" || !strings.Contains(body, "("+setting+")")):
					t.Errorf("from %s: 503 %q %s, want problem+json naming %s", ip, ct, body, setting)
				}
			}
			for range 3 {
				want("127.0.0.1", http.StatusOK, "")
			}
			want("127.0.0.1", http.StatusServiceUnavailable, "DASHCACHE_MAX_CONNS_PER_IP")
			want("127.0.0.2", http.StatusOK, "")
			want("127.0.0.2", http.StatusOK, "")
			want("127.0.0.2", http.StatusServiceUnavailable, "DASHCACHE_MAX_CONNS")

			open[3].Close() // one of 127.0.0.2's
			open = append(open[:3], open[4:]...)
			wait.For(t, "the closed connection's place to be free", 5*time.Second, func() bool {
				status, _, _ := get("127.0.0.2")
				return status == http.StatusOK
			})
			want("127.0.0.2", http.StatusServiceUnavailable, "DASHCACHE_MAX_CONNS")
		})
	}
}
