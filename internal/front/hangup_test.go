//go:build unix

package front

import (
	"net"
	"testing"
	"time"
)

// TestWatchOutlivesReadDeadline: the read deadline fasthttp set for the
// request (past, once a handler runs longer than ReadTimeout) does not end
// the watch: a hang-up after it is still seen.
func TestWatchOutlivesReadDeadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	server.SetReadDeadline(time.Now().Add(-time.Second))
	hungUp := make(chan struct{})
	stop := watchHangUp(server, func() { close(hungUp) })
	defer stop()
	client.Close()
	select {
	case <-hungUp:
	case <-time.After(10 * time.Second):
		t.Fatal("a hang-up after the request's read deadline went unseen")
	}
}
