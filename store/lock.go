package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/tracing"
)

var (
	// ErrLockContended is returned by Obtain when another worker holds the lock.
	ErrLockContended = errors.New("store: lock held by another owner")
	// ErrLockNotHeld is returned when the caller no longer owns the lock: it
	// expired, and perhaps another worker took it.
	ErrLockNotHeld = errors.New("store: lock not held")
)

// Lock is the owner-token lock on one report. Only its owner can renew or
// release it, or write the report through it.
type Lock struct {
	c     *Cache
	key   dashcache.ReportKey
	token string
	ttl   time.Duration
}

// Obtain takes the lock on a report for ttl with a fresh random owner token, or
// returns ErrLockContended.
func (c *Cache) Obtain(ctx context.Context, k dashcache.ReportKey, ttl time.Duration) (*Lock, error) {
	l := &Lock{c: c, key: k, token: newToken(), ttl: ttl}
	ok, err := c.rdb.SetNX(ctx, LockKey(k), l.token, ttl).Result()
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", k, err)
	}
	if !ok {
		return nil, ErrLockContended
	}
	return l, nil
}

// newToken returns a random owner token.
func newToken() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Renew extends the lock by its TTL, or returns ErrLockNotHeld.
func (l *Lock) Renew(ctx context.Context) error {
	return l.result(renewScript.Run(ctx, l.c.rdb, []string{LockKey(l.key)}, l.token, l.ttl.Milliseconds()).Int())
}

// Release deletes the lock if the caller still owns it, or returns
// ErrLockNotHeld; another owner's lock is never touched.
func (l *Lock) Release(ctx context.Context) error {
	return l.result(releaseScript.Run(ctx, l.c.rdb, []string{LockKey(l.key)}, l.token).Int())
}

// Fill stores a report's cached entry (see NewEntry) for ttl and clears its
// remembered failure, only while the caller owns the lock, and announces the
// fill to waiting readers in the same step. It returns ErrLockNotHeld, and
// writes nothing, when the lock was lost.
func (l *Lock) Fill(ctx context.Context, entry []byte, ttl time.Duration) error {
	return l.fencedWrite(ctx, entry, ttl, EntryKey(l.key), FailureKey(l.key))
}

// RememberFailure records for ttl that the BI platform failed for this report,
// with a detail for readers, fenced and announced like Fill.
func (l *Lock) RememberFailure(ctx context.Context, detail string, ttl time.Duration) error {
	return l.fencedWrite(ctx, detail, ttl, FailureKey(l.key))
}

func (l *Lock) fencedWrite(ctx context.Context, value any, ttl time.Duration, keys ...string) error {
	keys = append([]string{LockKey(l.key)}, keys...)
	n, err := fencedWriteScript.Run(ctx, l.c.rdb, keys, l.token, value, ttl.Milliseconds(), FillChannel, fillMessage(ctx, l.key)).Int()
	return l.result(n, err)
}

func (l *Lock) result(n int, err error) error {
	if err != nil {
		return fmt.Errorf("lock on %s: %w", l.key, err)
	}
	if n == 0 {
		return ErrLockNotHeld
	}
	return nil
}

// Hold keeps the lock alive while work runs: it renews the lock every third
// of its TTL and cancels the returned context (cause ErrLockNotHeld) as soon as
// the lock is found lost, or could not be renewed before it would expire.
// stop ends the renewal and waits for it to finish; it does not release.
func (l *Lock) Hold(ctx context.Context) (held context.Context, stop func()) {
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		lastOK := time.Now()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(held, l.ttl/3)
			err := l.Renew(rctx)
			rcancel()
			switch {
			case err == nil:
				lastOK = time.Now()
			case errors.Is(err, ErrLockNotHeld) || time.Since(lastOK) >= l.ttl:
				cancel(ErrLockNotHeld)
				return
			}
		}
	}()
	var once sync.Once
	return held, func() {
		once.Do(func() {
			cancel(context.Canceled)
			<-done
		})
	}
}

// fillMessage is the fill notification of k: its canonical key, and when
// the fill is traced, a space and the traceparent of ctx's span, so that
// the readers it wakes can link their spans to it. (Processes that read
// the message as a key alone must not run while tracing is on: turn it on
// once every process runs this version.)
func fillMessage(ctx context.Context, k dashcache.ReportKey) string {
	if tp := tracing.Traceparent(ctx); tp != "" {
		return k.String() + " " + tp
	}
	return k.String()
}
