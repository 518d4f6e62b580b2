package cli

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// movedPrimary is a go-redis hook for a Redis reached through a plain
// address (DASHCACHE_REDIS_URL, DASHCACHE_CACHE_REDIS_URL) that may move to
// another node when a replica is promoted: a DNS name, a virtual IP, a
// managed service's endpoint. Connections made before the move stay with
// the old node. go-redis closes one that answers READONLY (a write to the
// old primary, demoted) and dials the address again; this hook closes one
// that answers LOADING (the demoted primary loading the new one's data) or
// MASTERDOWN (a replica that lost its primary) too, so that reads, asynq's
// scripts and the fill notifications' subscription (whose PING gets those
// answers) move as well, instead of being refused until the old node has
// loaded.
type movedPrimary struct{}

func (movedPrimary) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		w := &watchedConn{Conn: c}
		if sc, ok := c.(syscall.Conn); ok {
			// go-redis checks an idle connection through its descriptor
			// before using it again: a closed one is dropped there.
			return watchedSyscallConn{w, sc}, nil
		}
		return w, nil // TLS: go-redis checks nothing; the next command fails and redials
	}
}

func (movedPrimary) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (movedPrimary) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// movedAnswers begin the replies after which a connection is closed.
var movedAnswers = [][]byte{[]byte("-LOADING "), []byte("-MASTERDOWN ")}

// watchedConn closes itself once a reply begins with one of movedAnswers:
// the reply, already read, is still handed to go-redis, and the next use of
// the connection fails, which makes go-redis dial again.
type watchedConn struct {
	net.Conn
	replyNext atomic.Bool // the next read begins a reply: a command was written
}

func (c *watchedConn) Write(p []byte) (int, error) {
	c.replyNext.Store(true)
	return c.Conn.Write(p)
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.replyNext.Swap(false) {
		for _, a := range movedAnswers {
			if bytes.HasPrefix(p[:n], a) {
				c.Conn.Close()
			}
		}
	}
	return n, err
}

// watchedSyscallConn is a watchedConn over a connection with a descriptor,
// which go-redis's pool checks.
type watchedSyscallConn struct {
	*watchedConn
	sc syscall.Conn
}

func (c watchedSyscallConn) SyscallConn() (syscall.RawConn, error) { return c.sc.SyscallConn() }
