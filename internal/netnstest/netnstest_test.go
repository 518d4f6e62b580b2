//go:build linux

package netnstest_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/netnstest"
)

// TestCutAndRestore: a host reaches another over the Net, not while its
// link is cut (the connection attempt times out: nothing is refused), and
// again once it is restored.
func TestCutAndRestore(t *testing.T) {
	n := netnstest.New(t)
	server, client := n.Host("srv"), n.Host("cli")
	ln, err := server.Listen("tcp", server.IP+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	dial := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := client.Dial(ctx, "tcp", server.IP+":7000")
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(5 * time.Second); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	client.Cut()
	if err := dial(500 * time.Millisecond); err == nil || !isTimeout(err) {
		t.Errorf("while cut: %v, want a timeout", err)
	}
	client.Restore()
	if err := dial(5 * time.Second); err != nil {
		t.Errorf("after the restore: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
