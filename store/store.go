// Package store keeps dashcache's state in Redis, in three parts split by
// what may be lost, each a type of its own on the client it belongs to:
//
//   - Cache (the reports' Redis, which may evict): the cached reports and
//     their remembered failures, the owner-token lock of the worker filling
//     a report, the fenced write that stores a report only while its writer
//     still owns the lock, and the notifications that wake readers waiting
//     for a fill;
//   - GuardState (the queue's Redis, which must not evict): the fleet's
//     guards of the BI platform: rate, 429 pause and breaker per back end,
//     customers' shares, admission, usage;
//   - Index (the queue's Redis): the cached reports by customer, their reads
//     and the data changes announced.
//
// Clock reads the Redis server's time. Every key is built in keys.go.
package store

import (
	"context"
	"crypto/rand"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/tracing"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

var (
	//go:embed fenced_write.lua
	fencedWriteSrc string
	//go:embed release.lua
	releaseSrc string
	//go:embed renew.lua
	renewSrc string

	fencedWriteScript = redis.NewScript(fencedWriteSrc)
	releaseScript     = redis.NewScript(releaseSrc)
	renewScript       = redis.NewScript(renewSrc)
)

// Store is dashcache's Redis state in its three parts. The queue's Redis
// holds the guards' state and the index; the cache may live there too, or
// on a Redis of its own (WithCache).
type Store struct {
	Cache  *Cache
	Guards *GuardState
	Index  *Index
}

// Option configures a Store.
type Option func(*options)

type options struct{ cache redis.UniversalClient }

// WithCache keeps the cache on a Redis of its own.
func WithCache(cache redis.UniversalClient) Option {
	return func(o *options) { o.cache = cache }
}

// New returns the Store on rdb, the queue's Redis (and the cache's, unless
// WithCache gives another). Every call is bounded by the clients' own dial,
// read and write timeouts, so a caller that passes a context without a
// deadline still gets an answer when Redis is unreachable.
func New(rdb redis.UniversalClient, opts ...Option) Store {
	o := options{cache: rdb}
	for _, opt := range opts {
		opt(&o)
	}
	return Store{
		Cache:  &Cache{rdb: o.cache, handOver: handOverChannel(o.cache)},
		Guards: &GuardState{rdb: rdb},
		Index:  &Index{rdb: rdb},
	}
}

// Cache is the report cache: what the fenced write touches, and may be
// evicted. It is safe for concurrent use.
type Cache struct {
	rdb      redis.UniversalClient
	handOver string // the channel that asks API processes for their reads
}

// Get returns the cached entry of a report (see ParseEntry), or "" when there is
// none, in one GET: a read that the API's L1 does not hold, and a worker's
// look at the cache under the lock.
func (c *Cache) Get(ctx context.Context, k dashcache.ReportKey) (string, error) {
	v, err := c.rdb.Get(ctx, EntryKey(k)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading report %s: %w", k, err)
	}
	return v, nil
}

// Found is what Lookup found of a report: its cached entry and the
// remembered failure of its last fill; either is "" when absent.
type Found struct{ Entry, Failure string }

// Lookup returns, in one round trip, what is cached of each report of keys
// (in their order): its entry and its remembered failure.
func (c *Cache) Lookup(ctx context.Context, keys ...dashcache.ReportKey) ([]Found, error) {
	cmds := make([]*redis.SliceCmd, len(keys))
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys { // a report's keys share a slot; the reports may not
			cmds[i] = p.MGet(ctx, EntryKey(k), FailureKey(k))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("looking up report %s: %w", keys[0], err)
	}
	out := make([]Found, len(keys))
	for i, cmd := range cmds {
		vals := cmd.Val()
		out[i].Entry, _ = vals[0].(string)
		out[i].Failure, _ = vals[1].(string)
	}
	return out, nil
}

// Locked reports whether some worker holds the report's lock.
func (c *Cache) Locked(ctx context.Context, k dashcache.ReportKey) (bool, error) {
	n, err := c.rdb.Exists(ctx, LockKey(k)).Result()
	if err != nil {
		return false, fmt.Errorf("checking lock of %s: %w", k, err)
	}
	return n == 1, nil
}

// Ping checks that the cache's Redis answers.
func (c *Cache) Ping(ctx context.Context) error {
	return c.rdb.Ping(ctx).Err()
}

// readyTTL is how long a readiness check's key outlives it.
const readyTTL = 10 * time.Second

// CheckWritable checks that rdb takes writes, as a process's readiness check:
// a SET of a key of the process's own (readyKey), which expires. A replica
// answers READONLY, a Redis still loading its data LOADING, a replica that
// lost its primary MASTERDOWN, a full one OOM; PING would pass on all of
// them.
func CheckWritable(ctx context.Context, rdb redis.UniversalClient, process string) error {
	return rdb.Set(ctx, readyKey(process), "1", readyTTL).Err()
}

// Listener is told what a Subscription hears.
type Listener struct {
	// Filled is called with the canonical key of every report filled (or
	// failed, or marked stale) anywhere in the fleet, and the span of the
	// fill when it was traced (else an invalid one). Required.
	Filled func(canonical string, fill trace.SpanContext)
	// HandOver, if set, is called when an invalidation asks every API
	// process to hand the reads it saw over to the index, and to answer
	// with AnswerHandOver(reply) once it has; the subscription then counts
	// as an API process (see HandOverReads).
	HandOver func(reply string)
	// Up, if set, is told false as soon as a notification may have been
	// lost (the connection broke, or stopped hearing what is published:
	// see probeEvery), and true when the subscription is back (go-redis
	// reconnects and subscribes again by itself; Run subscribes again on a
	// connection that hears nothing).
	Up func(bool)
}

// Subscription delivers fill notifications, and asks to hand reads over, to
// its Listener.
type Subscription struct {
	c        *Cache
	channels []string
	probe    string // its own channel, on which it publishes to itself
	l        Listener

	mu     sync.Mutex
	ps     *redis.PubSub // replaced by resubscribe
	closed bool
}

// Subscribe subscribes l to fill notifications (and asks to hand reads
// over, if l takes them) and returns once Redis has confirmed the
// subscription: every fill announced after Subscribe returns is delivered by
// Run. A notification sent while the connection is being re-established is
// lost, so waiters must bound their wait.
func (c *Cache) Subscribe(ctx context.Context, l Listener) (*Subscription, error) {
	channels := []string{FillChannel, probeChannel(rand.Text())}
	if l.HandOver != nil {
		channels = append(channels, c.handOver)
	}
	ps := c.rdb.Subscribe(ctx, channels...)
	for range channels {
		if _, err := ps.Receive(ctx); err != nil {
			ps.Close()
			return nil, fmt.Errorf("subscribing to %s: %w", FillChannel, err)
		}
	}
	return &Subscription{c: c, channels: channels, probe: channels[1], l: l, ps: ps}, nil
}

// probeEvery is how long a quiet subscription waits before it publishes to
// itself, through the client that the fleet writes with: a connection that
// hears neither that nor anything else within two of them is taken for lost
// (broken, hung, or on a node that no longer hears what is published on the
// primary: an old primary that a Sentinel switchover has not yet demoted, a
// node whose address moved), and subscribes again.
const probeEvery = time.Second

// Run tells the Listener what the subscription hears until ctx ends or the
// subscription is closed.
func (sub *Subscription) Run(ctx context.Context) {
	isUp, quiet := true, 0
	set := func(u bool) {
		if u != isUp && sub.l.Up != nil {
			sub.l.Up(u)
		}
		isUp = u
	}
	for {
		sub.mu.Lock()
		ps := sub.ps
		sub.mu.Unlock()
		msg, err := ps.ReceiveTimeout(ctx, probeEvery)
		switch {
		case ctx.Err() != nil || errors.Is(err, redis.ErrClosed):
			return
		case err != nil && isTimeout(err):
			if quiet++; quiet >= 2 {
				set(false)
				sub.resubscribe(ctx)
				quiet = 0
			} else {
				// A broken connection fails the next receive, and a node
				// loading its data answers LOADING (then the connection is
				// dialled again); a pong alone does not count as heard.
				_ = ps.Ping(ctx)
			}
			// Heard on the next receive, if at all; bounded, so that a Redis
			// cut off by a partition (the client's timeouts: seconds) does not
			// hold up the next receive.
			pctx, cancel := context.WithTimeout(ctx, probeEvery)
			_ = sub.c.rdb.Publish(pctx, sub.probe, "").Err()
			cancel()
			continue
		case err != nil:
			set(false)
			select { // go-redis reconnects on the next receive
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		if _, pong := msg.(*redis.Pong); pong {
			continue
		}
		quiet = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			set(true)
		case *redis.Message:
			set(true)
			switch m.Channel {
			case FillChannel:
				canonical, traceparent, _ := strings.Cut(m.Payload, " ")
				sub.l.Filled(canonical, tracing.ParseTraceparent(traceparent))
			case sub.probe:
			default:
				sub.l.HandOver(m.Payload)
			}
		}
	}
}

// resubscribe replaces the subscription's connection by a new one, dialled
// through the client as any new connection is: to the primary it names now.
// It is told true when Redis confirms the subscription.
func (sub *Subscription) resubscribe(ctx context.Context) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return
	}
	sub.ps.Close()
	sub.ps = sub.c.rdb.Subscribe(ctx, sub.channels...)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close ends the subscription.
func (sub *Subscription) Close() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return nil
	}
	sub.closed = true
	return sub.ps.Close()
}
