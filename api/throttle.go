package api

import (
	"sync"
	"time"
)

// throttleAddrs bounds how many addresses a throttle remembers: past it, the
// address whose last failure is oldest is forgotten.
const throttleAddrs = 10000

// throttle counts failures per address over a sliding window: once an
// address has limit failures within the window, it waits until the oldest
// leaves it. It is safe for concurrent use.
type throttle struct {
	mu     sync.RWMutex
	limit  int
	window time.Duration
	fails  map[string][]time.Time // per address, oldest first, at most limit
	now    func() time.Time
}

func newThrottle(limit int, window time.Duration) *throttle {
	return &throttle{limit: limit, window: window, fails: map[string][]time.Time{}, now: time.Now}
}

// wait returns how long addr must wait before it may try again; 0: now.
// It only reads: every authenticated request asks.
func (t *throttle) wait(addr string) time.Duration {
	t.mu.RLock()
	defer t.mu.RUnlock()
	f := t.fails[addr]
	if len(f) < t.limit {
		return 0
	}
	return max(f[0].Add(t.window).Sub(t.now()), 0)
}

// add counts a failure of addr.
func (t *throttle) add(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.recent(addr)
	if len(f) == t.limit {
		f = f[1:]
	}
	if _, known := t.fails[addr]; !known && len(t.fails) >= throttleAddrs {
		t.forgetOldest()
	}
	t.fails[addr] = append(f, t.now())
}

// recent returns addr's failures within the window, forgetting the older.
func (t *throttle) recent(addr string) []time.Time {
	f := t.fails[addr]
	since := t.now().Add(-t.window)
	for len(f) > 0 && !f[0].After(since) {
		f = f[1:]
	}
	if len(f) == 0 {
		delete(t.fails, addr)
		return nil
	}
	t.fails[addr] = f
	return f
}

func (t *throttle) forgetOldest() {
	var oldest string
	var at time.Time
	for addr, f := range t.fails {
		if last := f[len(f)-1]; oldest == "" || last.Before(at) {
			oldest, at = addr, last
		}
	}
	delete(t.fails, oldest)
}
