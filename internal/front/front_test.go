package front_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/front"
	"github.com/dashcache/dashcache/internal/front/fronttest"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, fronttest.Leaks...) }

// fixture is a front on loopback whose fast handler answers GET /fast, and
// whose slow one echoes requests (/echo), waits (/wait) or panics (/panic).
type fixture struct {
	addr     string
	srv      *front.Server
	served   chan error
	fast     atomic.Int64 // requests Fast answered
	slow     atomic.Int64 // requests Slow was given
	waiting  chan struct{}
	release  chan struct{}
	canceled chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{served: make(chan error, 1), waiting: make(chan struct{}, 1), release: make(chan struct{}), canceled: make(chan struct{}, 1)}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(echoed{r.Method, r.RequestURI, r.Host, r.Header, string(body), r.RemoteAddr})
	})
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		f.waiting <- struct{}{}
		select {
		case <-r.Context().Done():
			f.canceled <- struct{}{}
		case <-f.release:
			io.WriteString(w, "released")
		}
	})
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("/abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/late", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Header().Set("X-Late", "yes")
		io.WriteString(w, "late")
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		io.WriteString(w, "not sent")
	})
	f.srv = front.New(front.Config{
		Fast: func(c *fasthttp.RequestCtx) bool {
			if string(c.Path()) != "/fast" {
				return false
			}
			f.fast.Add(1)
			c.SetBodyString("fast")
			return true
		},
		Slow: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.slow.Add(1)
			mux.ServeHTTP(w, r)
		}),
		ReadTimeout:    5 * time.Second,
		IdleTimeout:    time.Minute,
		WriteTimeout:   5 * time.Second,
		MaxHeaderBytes: 4 << 10,
		MaxBodyBytes:   1 << 10,
		Problem: func(status int, detail string) []byte {
			return fmt.Appendf(nil, `{"status":%d,"detail":%q}`, status, detail)
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	go func() { f.served <- f.srv.Serve(ln) }()
	t.Cleanup(func() {
		f.srv.Shutdown(context.Background())
		if err := <-f.served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v, want http.ErrServerClosed", err)
		}
	})
	return f
}

// echoed is what /echo answers: the request as the slow handler got it.
type echoed struct {
	Method string      `json:"method"`
	URI    string      `json:"uri"` // RequestURI
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
	Body   string      `json:"body"`
	Remote string      `json:"remote"`
}

// conn is one client connection.
type conn struct {
	t *testing.T
	net.Conn
	r *bufio.Reader
}

func (f *fixture) dial(t *testing.T) *conn {
	t.Helper()
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &conn{t, c, bufio.NewReader(c)}
}

func (c *conn) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c, strings.ReplaceAll(raw, "\n", "\r\n")); err != nil {
		c.t.Fatal(err)
	}
}

// read reads a response to method; it returns its status, header and body.
func (c *conn) read(method string) (int, http.Header, string) {
	c.t.Helper()
	resp, err := http.ReadResponse(c.r, &http.Request{Method: method})
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// TestConnectionGoesBackToFast: on one keep-alive connection, a request the
// fast handler declines is served by the slow one, whole (a chunked body
// included), and the next request is offered to the fast handler again;
// pipelined requests are answered in order.
func TestConnectionGoesBackToFast(t *testing.T) {
	f := newFixture(t)
	c := f.dial(t)
	c.send("GET /fast HTTP/1.1\nHost: x\n\n")
	if status, _, body := c.read("GET"); status != 200 || body != "fast" {
		t.Fatalf("GET /fast: %d %q", status, body)
	}
	c.send("POST /echo?a=1&b=%20 HTTP/1.1\nHost: x\nX-Test: yes\nTransfer-Encoding: chunked\n\n3\nabc\n2\nde\n0\n\n")
	status, h, body := c.read("POST")
	var echo echoed
	if err := json.Unmarshal([]byte(body), &echo); status != 200 || err != nil {
		t.Fatalf("POST /echo: %d %q", status, body)
	}
	if echo.Method != "POST" || echo.URI != "/echo?a=1&b=%20" || echo.Header.Get("X-Test") != "yes" || echo.Body != "abcde" ||
		!strings.HasPrefix(echo.Remote, "127.0.0.1:") || h.Get("Content-Type") != "application/json" {
		t.Errorf("the slow handler got %v (Content-Type %q)", echo, h.Get("Content-Type"))
	}
	c.send("GET /fast HTTP/1.1\nHost: x\n\n")
	if status, _, body := c.read("GET"); status != 200 || body != "fast" {
		t.Fatalf("GET /fast after a slow request: %d %q", status, body)
	}
	c.send("GET /echo HTTP/1.1\nHost: x\n\nGET /fast HTTP/1.1\nHost: x\n\nHEAD /echo HTTP/1.1\nHost: x\n\n")
	if status, _, body := c.read("GET"); status != 200 || !strings.Contains(body, `"method":"GET"`) {
		t.Errorf("pipelined GET /echo: %d %q", status, body)
	}
	if status, _, body := c.read("GET"); status != 200 || body != "fast" {
		t.Errorf("pipelined GET /fast: %d %q", status, body)
	}
	if status, h, body := c.read("HEAD"); status != 200 || body != "" || h.Get("Content-Length") == "" {
		t.Errorf("pipelined HEAD /echo: %d, Content-Length %q, body %q", status, h.Get("Content-Length"), body)
	}
	if n := f.fast.Load(); n != 3 {
		t.Errorf("the fast handler answered %d requests, want 3", n)
	}
}

// TestHangUpEndsContext: a slow request's context ends when its client
// hangs up, as with net/http.
func TestHangUpEndsContext(t *testing.T) {
	f := newFixture(t)
	c := f.dial(t)
	c.send("GET /wait HTTP/1.1\nHost: x\n\n")
	<-f.waiting
	c.Close()
	select {
	case <-f.canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's context did not end when the client hung up")
	}
}

// TestShutdownWaits: Shutdown lets a slow request under way finish and be
// answered.
func TestShutdownWaits(t *testing.T) {
	f := newFixture(t)
	c := f.dial(t)
	c.send("GET /wait HTTP/1.1\nHost: x\n\n")
	<-f.waiting
	done := make(chan error, 1)
	go func() { done <- f.srv.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a request was under way", err)
	case <-time.After(200 * time.Millisecond): // a check that it waits; not a synchronization
	}
	close(f.release)
	if status, _, body := c.read("GET"); status != 200 || body != "released" {
		t.Errorf("the request under way: %d %q", status, body)
	}
	if n, err := c.r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("after the answer: read %d bytes, %v; want the connection closed", n, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestRefusals: what cannot be read gets a problem+json refusal, and a
// panicking handler a 500; the server goes on serving.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name, raw string
		status    int
	}{
		{"not HTTP", "HELLO\n\n", http.StatusBadRequest},
		{"a header past 4 KiB", "GET /fast HTTP/1.1\nHost: x\nX-Big: " + strings.Repeat("a", 5<<10) + "\n\n", http.StatusRequestHeaderFieldsTooLarge},
		{"a body past 1 KiB", "POST /echo HTTP/1.1\nHost: x\nContent-Length: 2000\n\n" + strings.Repeat("a", 2000), http.StatusRequestEntityTooLarge},
		{"a panic", "GET /panic HTTP/1.1\nHost: x\n\n", http.StatusInternalServerError},
	} {
		c := f.dial(t)
		c.send(tc.raw)
		status, h, body := c.read("GET")
		if status != tc.status {
			t.Errorf("%s: %d %q, want %d", tc.name, status, body, tc.status)
		}
		if status != http.StatusInternalServerError && (h.Get("Content-Type") != "application/problem+json" || !strings.Contains(body, `"detail"`)) {
			t.Errorf("%s: Content-Type %q, body %q; want problem+json", tc.name, h.Get("Content-Type"), body)
		}
	}
	c := f.dial(t)
	c.send("GET /fast HTTP/1.1\nHost: x\n\n")
	if status, _, body := c.read("GET"); status != 200 || body != "fast" {
		t.Errorf("after the refusals: %d %q", status, body)
	}
}

// TestNetHTTPSemantics: what the slow handler writes is answered as
// net/http answers it: a header set after WriteHeader is not sent, a 204
// has no body nor guessed Content-Type, an ErrAbortHandler panic drops the
// connection without an answer, and an HTTP/1.0 request without a Host is
// served (Host "").
func TestNetHTTPSemantics(t *testing.T) {
	f := newFixture(t)
	c := f.dial(t)
	c.send("GET /late HTTP/1.1\nHost: x\n\n")
	if status, h, body := c.read("GET"); status != 200 || body != "late" || h.Get("X-Late") != "" {
		t.Errorf("GET /late: %d %q, X-Late %q", status, body, h.Get("X-Late"))
	}
	c.send("GET /nocontent HTTP/1.1\nHost: x\n\n")
	if status, h, body := c.read("GET"); status != http.StatusNoContent || body != "" || h.Get("Content-Type") != "" {
		t.Errorf("GET /nocontent: %d %q, Content-Type %q", status, body, h.Get("Content-Type"))
	}
	c.send("GET /echo HTTP/1.0\n\n")
	if status, _, body := c.read("GET"); status != 200 || !strings.Contains(body, `"host":""`) {
		t.Errorf("HTTP/1.0 without a Host: %d %q", status, body)
	}
	c = f.dial(t)
	c.send("GET /abort HTTP/1.1\nHost: x\n\n")
	if n, err := c.r.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("GET /abort: read %d bytes, %v; want the connection dropped", n, err)
	}
}
