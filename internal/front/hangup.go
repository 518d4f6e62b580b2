//go:build unix

package front

import (
	"errors"
	"net"
	"syscall"
	"time"
)

// watchHangUp calls hungUp if the client of conn hangs up (closes or resets
// the connection) before stop is called, as net/http ends a request's
// context. It peeks, and so takes no byte: a next request that arrives
// meanwhile (pipelined) ends the watch, and is left for fasthttp to read.
// stop returns once the watch has ended. A connection that is not a socket
// (net.Pipe, in tests) is not watched.
func watchHangUp(conn net.Conn, hungUp func()) (stop func()) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	// The deadline fasthttp set to read the request must not end the
	// watch: a handler may take longer than that.
	conn.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [1]byte
		raw.Read(func(fd uintptr) bool {
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				return false // nothing yet: wait until the socket is readable
			}
			if n == 0 || err != nil {
				hungUp() // end of stream, or reset
			}
			return true
		})
	}()
	return func() {
		conn.SetReadDeadline(time.Unix(1, 0)) // ends the wait at once
		<-done
		conn.SetReadDeadline(time.Time{}) // fasthttp sets its own for the next request
	}
}
