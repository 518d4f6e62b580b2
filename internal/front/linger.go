package front

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// A refused request (413, 431, 400, 408, or a handler's panic) closes its
// connection while the client may still be sending: the rest of a body
// past its bound, of a header past its bound. A socket closed with bytes
// unread makes the kernel answer them with a reset, and a client still
// writing then sees its connection reset instead of reading the refusal
// (RFC 9112, section 9.6). So a refused connection lingers, as net/http's
// and nginx's do: the refusal is sent, then the end of the answer (a FIN),
// then what the client still sends is read and thrown away until it
// closes, up to lingerBytes or for lingerFor, whichever comes first; only
// then is the socket closed.
const (
	lingerBytes = 1 << 20
	lingerFor   = 2 * time.Second
)

// listener hands fasthttp connections that can linger.
type listener struct{ net.Listener }

func (l listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c}, nil
}

// conn is a connection that lingers when it closes, once refused.
type conn struct {
	net.Conn
	refused atomic.Bool
}

// lingerOnClose makes c, a RequestCtx's connection, linger when fasthttp
// closes it.
func lingerOnClose(c net.Conn) {
	if c, ok := c.(*conn); ok {
		c.refused.Store(true)
	}
}

// Close closes the connection, lingering first if it was refused.
func (c *conn) Close() error {
	if c.refused.Swap(false) {
		if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		c.Conn.SetReadDeadline(time.Now().Add(lingerFor))
		io.CopyN(io.Discard, c.Conn, lingerBytes)
	}
	return c.Conn.Close()
}

// SyscallConn returns the socket's, for watchHangUp to peek at.
func (c *conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}
