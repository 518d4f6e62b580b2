// Package fronttest helps the tests of packages that serve through
// internal/front.
package fronttest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/goleak"
)

// Leaks are goleak's options for the goroutines fasthttp leaves running by
// design: its clock, and its worker pool's cleaner for a while after a
// server stops.
var Leaks = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}

// Send sends the request raw to addr on a connection of its own, as a
// client that writes its whole request before it reads (in writes of 4
// KiB, as a buffered writer makes them), then reads the answer and closes.
// It returns the answer's status, header and body, or the first error met:
// a write cut short (a reset, a broken pipe: the server closed with the
// request unread) is one, though the answer might still be read after it.
func Send(addr, raw string) (status int, h http.Header, body string, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, nil, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	for len(raw) > 0 {
		n := min(len(raw), 4<<10)
		if _, err := io.WriteString(c, raw[:n]); err != nil {
			return 0, nil, "", fmt.Errorf("sending the request: %w", err)
		}
		raw = raw[n:]
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, nil, "", fmt.Errorf("reading the answer: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, "", fmt.Errorf("reading the answer: %w", err)
	}
	return resp.StatusCode, resp.Header, string(b), nil
}
