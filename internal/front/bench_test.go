package front_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/front"
	"github.com/valyala/fasthttp"
)

// BenchmarkIdleConnections measures the heap an idle keep-alive connection
// costs (each has made one request), over 1000 of them, in the same run:
// served by a front as the api role configures it (32 KiB headers), and by
// net/http with the same header bound. The clients' side, the same for
// both, is counted too.
func BenchmarkIdleConnections(b *testing.B) {
	const conns = 1000
	hello := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
	for _, c := range []struct {
		name  string
		serve func(net.Listener) (stop func())
	}{
		{"front", func(ln net.Listener) func() {
			f := front.New(front.Config{
				Fast:        func(c *fasthttp.RequestCtx) bool { c.SetBodyString("hello"); return true },
				Slow:        hello,
				ReadTimeout: time.Minute, IdleTimeout: time.Minute, WriteTimeout: time.Minute,
				MaxHeaderBytes: 32 << 10, MaxBodyBytes: 1 << 20,
				Problem: func(int, string) []byte { return nil },
			})
			go f.Serve(ln)
			return func() { f.Shutdown(context.Background()) }
		}},
		{"net-http", func(ln net.Listener) func() {
			hs := &http.Server{Handler: hello, IdleTimeout: time.Minute, MaxHeaderBytes: 32 << 10}
			go hs.Serve(ln)
			return func() { hs.Shutdown(context.Background()) }
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				stop := c.serve(ln)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				open := make([]net.Conn, 0, conns)
				buf := make([]byte, 4096)
				for range conns {
					conn, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						b.Fatal(err)
					}
					open = append(open, conn)
					io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
					for got := 0; !bytes.HasSuffix(buf[:got], []byte("hello")); {
						n, err := conn.Read(buf[got:])
						if err != nil {
							b.Fatal(err)
						}
						got += n
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/conns, "heap-bytes/conn")
				for _, conn := range open {
					conn.Close()
				}
				stop()
			}
		})
	}
}
