package front_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/front"
	"github.com/valyala/fasthttp"
)

// bound is how long Serve or Shutdown may take to return before a test
// calls it hung: a bound on a wait that ends on an event, not a pause.
const bound = 10 * time.Second

// newServer returns a front answering every request from Fast, and a
// loopback listener for it.
func newServer(t *testing.T) (*front.Server, net.Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return front.New(front.Config{
		Fast:           func(c *fasthttp.RequestCtx) bool { c.SetBodyString("fast"); return true },
		Slow:           http.NotFoundHandler(),
		MaxHeaderBytes: 4 << 10, MaxBodyBytes: 1 << 10,
		Problem: func(int, string) []byte { return nil },
	}), ln
}

// serve runs Serve in the background; the channel gets what it returns.
func serve(srv *front.Server, ln net.Listener) <-chan error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return served
}

// returned fails t unless ch yields within bound; it returns what it got.
func returned[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("%s did not return within %v", what, bound)
		panic("unreachable")
	}
}

// shutdown runs Shutdown in the background; the channel gets what it
// returns.
func shutdown(srv *front.Server) <-chan error {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	return done
}

// TestShutdownRightAfterServe: Shutdown straight after Serve was started,
// before fasthttp has taken the listener (fasthttp's own Shutdown then
// does nothing), still makes Serve return http.ErrServerClosed.
func TestShutdownRightAfterServe(t *testing.T) {
	for range 200 {
		srv, ln := newServer(t)
		served := serve(srv, ln)
		if err := returned(t, "Shutdown", shutdown(srv)); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := returned(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v, want http.ErrServerClosed", err)
		}
	}
}

// TestShutdownBeforeServe: Serve after Shutdown closes its listener and
// returns http.ErrServerClosed at once, as net/http's does.
func TestShutdownBeforeServe(t *testing.T) {
	srv, ln := newServer(t)
	if err := returned(t, "Shutdown", shutdown(srv)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := returned(t, "Serve", serve(srv, ln)); !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve: %v, want http.ErrServerClosed", err)
	}
	if c, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		if c != nil {
			c.Close()
		}
		t.Errorf("the listener after Serve: Accept %v, want it closed", err)
	}
}

// TestServeShutdownConcurrently: Serve and Shutdown started together, in
// whichever order they run, both return, and Serve with
// http.ErrServerClosed.
func TestServeShutdownConcurrently(t *testing.T) {
	for range 200 {
		srv, ln := newServer(t)
		start := make(chan struct{})
		served, done := make(chan error, 1), make(chan error, 1)
		go func() { <-start; served <- srv.Serve(ln) }()
		go func() { <-start; done <- srv.Shutdown(context.Background()) }()
		close(start)
		if err := returned(t, "Shutdown", done); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := returned(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
			t.Fatalf("Serve: %v, want http.ErrServerClosed", err)
		}
	}
}

// TestShutdownTwice: Shutdown may be called again, alongside the first
// and after it, and returns nil each time.
func TestShutdownTwice(t *testing.T) {
	srv, ln := newServer(t)
	served := serve(srv, ln)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if answer, _ := io.ReadAll(c); !strings.HasSuffix(string(answer), "fast") { // fasthttp has taken the listener
		t.Fatalf("GET /: %q", answer)
	}
	first, second := shutdown(srv), shutdown(srv)
	for _, done := range []<-chan error{first, second} {
		if err := returned(t, "Shutdown", done); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}
	if err := returned(t, "Shutdown", shutdown(srv)); err != nil {
		t.Errorf("Shutdown after Shutdown: %v", err)
	}
	if err := returned(t, "Serve", served); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v, want http.ErrServerClosed", err)
	}
}
