package front

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// LimitConfig caps the connections a listener hands out (Limit).
type LimitConfig struct {
	// Max is the most connections open at once; 0: no cap.
	Max int
	// MaxPerIP is the most open at once from one client address; 0: no cap.
	MaxPerIP int
	// TooMany and TooManyFromIP are the problem+json bodies of the 503
	// answering a connection past Max, and past MaxPerIP. Required with
	// their cap.
	TooMany, TooManyFromIP []byte
}

// A refused connection is answered on a goroutine of its own: it waits up
// to refuseWait for the client's request (a client that gets an answer
// before it has sent its request may not read it), answers, then reads and
// throws away what still comes for up to refuseWait more, so that the
// answer is not lost to a reset (as linger.go). At most maxRefusing
// connections are answered at once; past that, a connection is closed
// unanswered, so that a flood of connections costs no more than the cap.
const (
	refuseWait  = time.Second
	maxRefusing = 256
)

// Limit returns ln with the connections it hands out capped by cfg: a
// connection past a cap is answered 503 with a problem+json body
// (Retry-After: 1, Connection: close) and closed, without reaching the
// server; a connection handed out frees its place when it is closed.
// It serves net/http's and a front's Serve alike.
func Limit(ln net.Listener, cfg LimitConfig) net.Listener {
	if cfg.Max <= 0 && cfg.MaxPerIP <= 0 {
		return ln
	}
	return &limitListener{
		Listener:  ln,
		cfg:       cfg,
		tooMany:   refusal(cfg.TooMany),
		tooManyIP: refusal(cfg.TooManyFromIP),
		perIP:     map[string]int{},
		refusing:  map[net.Conn]struct{}{},
	}
}

// refusal is the whole 503 answer with body.
func refusal(body []byte) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"+
		"Cache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

type limitListener struct {
	net.Listener
	cfg                LimitConfig
	tooMany, tooManyIP []byte

	mu       sync.Mutex
	closed   bool // Close has begun: no more answers are started
	open     int
	perIP    map[string]int
	refusing map[net.Conn]struct{} // being answered 503
	wg       sync.WaitGroup        // the goroutines answering them
}

// Accept returns the next connection within the caps, answering those
// past them meanwhile.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		l.mu.Lock()
		var answer []byte
		switch {
		case l.cfg.Max > 0 && l.open >= l.cfg.Max:
			answer = l.tooMany
		case l.cfg.MaxPerIP > 0 && l.perIP[ip] >= l.cfg.MaxPerIP:
			answer = l.tooManyIP
		default:
			l.open++
			l.perIP[ip]++
			l.mu.Unlock()
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		if l.closed || len(l.refusing) >= maxRefusing {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.refusing[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.refuse(c, answer)
	}
}

// refuse answers c 503 and closes it.
func (l *limitListener) refuse(c net.Conn, answer []byte) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.refusing, c)
		l.mu.Unlock()
		c.Close()
	}()
	c.SetReadDeadline(time.Now().Add(refuseWait))
	var head []byte
	buf := make([]byte, 4<<10)
	for len(head) < 16<<10 && !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		head = append(head, buf[:n]...)
		if err != nil {
			break
		}
	}
	c.SetWriteDeadline(time.Now().Add(refuseWait))
	if _, err := c.Write(answer); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(refuseWait))
	io.CopyN(io.Discard, c, lingerBytes)
}

// Close closes the listener, cuts short the answers of refused
// connections and waits for them to end.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.mu.Lock()
	l.closed = true // no wg.Add from here, so Wait may begin
	for c := range l.refusing {
		c.SetDeadline(time.Unix(1, 0))
	}
	l.mu.Unlock()
	l.wg.Wait()
	return err
}

func (l *limitListener) release(ip string) {
	l.mu.Lock()
	l.open--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
	l.mu.Unlock()
}

// clientIP is the address part of a client's address (its port apart).
func clientIP(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitedConn frees its place in the caps when it is closed, once.
type limitedConn struct {
	net.Conn
	l    *limitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// CloseWrite half-closes the socket, for lingering (linger.go, and
// net/http's own).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn returns the socket's, for watchHangUp to peek at.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}
