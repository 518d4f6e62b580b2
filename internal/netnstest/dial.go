//go:build linux

package netnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// Dial connects to addr from inside the host's namespace (for the test's
// own clients: http.Transport.DialContext, redis.Options.Dialer).
func (h *Host) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.in(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens on addr inside the host's namespace (for a server the test
// runs itself, such as a fake BI platform).
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := h.in(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// in runs fn on an OS thread moved into the host's namespace: the sockets
// fn opens belong to it for good. The thread is never unlocked, so it ends
// with its goroutine rather than serve others from the wrong namespace.
func (h *Host) in(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + h.Name)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("entering network namespace %s: %w", h.Name, err)
			return
		}
		done <- fn()
	}()
	return <-done
}
