// Package roletest runs a role of dashcache in process for a test, as the
// binary would run it, and hands the test its log lines: the end-to-end
// tests of internal/cli and the client's tests against the whole service.
// It does not import internal/cli (whose own tests use it): the caller
// binds cli.Run to the role and its environment.
package roletest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

// Start runs a role (run: cli.Run with the role's arguments and
// environment bound, writing its JSON log to stdout) until the test ends,
// and returns the address it listens on, from its log line "listening".
// Each log line goes to onLine (if not nil), on a goroutine of its own,
// never after the test has ended. When the test ends the role's context is
// cancelled, and the role must exit cleanly (run returns nil). name names
// the role in failures.
func Start(t testing.TB, name string, run func(ctx context.Context, stdout io.Writer) error, onLine func(line []byte)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	addrc := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if onLine != nil {
				onLine(sc.Bytes())
			}
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "listening" {
				select {
				case addrc <- line.Addr:
				default: // a second listener: the first is the role's
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, pw)
		pw.Close()
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s exited with %v", name, err)
		}
		<-read
	})
	select {
	case addr := <-addrc:
		return addr
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("%s stopped before listening: %v", name, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start listening", name)
	}
	return ""
}
