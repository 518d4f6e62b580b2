package front_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/front"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/valyala/fasthttp"
)

// TestLimit: with at most 5 connections open and 3 from one address, a
// front and a net/http server behind Limit serve the connections within
// the caps (each kept open after a request), answer one past either cap
// 503 with the body of that cap, and serve again once a connection has
// closed. Clients come from 127.0.0.1 and 127.0.0.2 (both loopback).
func TestLimit(t *testing.T) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
	for _, tc := range []struct {
		name  string
		serve func(net.Listener) (stop func())
	}{
		{"front", func(ln net.Listener) func() {
			f := front.New(front.Config{
				Fast:        func(c *fasthttp.RequestCtx) bool { c.SetBodyString("hello"); return true },
				Slow:        hello,
				ReadTimeout: time.Minute, IdleTimeout: time.Minute, WriteTimeout: time.Minute,
				MaxHeaderBytes: 4 << 10, MaxBodyBytes: 1 << 10,
				Problem: func(int, string) []byte { return nil },
			})
			go f.Serve(ln)
			return func() { f.Shutdown(context.Background()) }
		}},
		{"net-http", func(ln net.Listener) func() {
			hs := &http.Server{Handler: hello, IdleTimeout: time.Minute}
			go hs.Serve(ln)
			return func() { hs.Shutdown(context.Background()) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			stop := tc.serve(front.Limit(ln, front.LimitConfig{
				Max: 5, MaxPerIP: 3,
				TooMany:       []byte(`{"detail":"too many"}`),
				TooManyFromIP: []byte(`{"detail":"too many from you"}`),
			}))
			defer stop()
			addr := ln.Addr().String()
			var open []net.Conn
			defer func() {
				for _, c := range open {
					c.Close()
				}
			}()
			// get makes a request on a new connection from ip, and keeps
			// it open if it was served.
			get := func(ip string) (int, string) {
				t.Helper()
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					c.Close()
					t.Fatalf("from %s: %v", ip, err)
				}
				body, _ := io.ReadAll(resp.Body)
				if resp.StatusCode == http.StatusOK {
					open = append(open, c)
				} else {
					if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
						t.Errorf("refusal's Content-Type %q", ct)
					}
					c.Close()
				}
				return resp.StatusCode, string(body)
			}
			want := func(ip string, status int, body string) {
				t.Helper()
				if got, b := get(ip); got != status || !strings.Contains(b, body) {
					t.Errorf("from %s: %d %q, want %d %q", ip, got, b, status, body)
				}
			}
			for range 3 {
				want("127.0.0.1", http.StatusOK, "hello")
			}
			want("127.0.0.1", http.StatusServiceUnavailable, "too many from you")
			want("127.0.0.2", http.StatusOK, "hello")
			want("127.0.0.2", http.StatusOK, "hello")
			want("127.0.0.2", http.StatusServiceUnavailable, `"too many"`)
			want("127.0.0.3", http.StatusServiceUnavailable, `"too many"`)

			// Closing one of 127.0.0.1's frees a place for it (once the
			// server has seen the close).
			open[0].Close()
			open = open[1:]
			wait.For(t, "a place to free up", 5*time.Second, func() bool {
				status, _ := get("127.0.0.1")
				return status == http.StatusOK
			})
			want("127.0.0.1", http.StatusServiceUnavailable, "too many") // past both caps again
		})
	}
}
