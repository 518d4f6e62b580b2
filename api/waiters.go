package api

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// waiters lets the readers of one report inside this process share one wait:
// one enqueue, one channel closed by the report's fill notification.
type waiters struct {
	mu sync.Mutex
	m  map[string]*wait
}

type wait struct {
	done    chan struct{}     // closed when the report is filled or failed
	fill    trace.SpanContext // the fill's span, if traced: set before done is closed
	readers int               // guarded by waiters.mu

	enqueueMu  sync.Mutex
	enqueuedAt time.Time // zero until the first enqueue succeeds
}

// join registers a reader of key and returns the wait it shares. Call leave
// when done.
func (ws *waiters) join(key string) *wait {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w := ws.m[key]
	if w == nil {
		w = &wait{done: make(chan struct{})}
		ws.m[key] = w
	}
	w.readers++
	return w
}

// leave unregisters a reader; the last one out forgets the wait.
func (ws *waiters) leave(key string, w *wait) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.readers--
	if w.readers == 0 && ws.m[key] == w {
		delete(ws.m, key)
	}
}

// wake ends the wait on key, if any: its readers look the report up again,
// and link their spans to the fill's.
func (ws *waiters) wake(key string, fill trace.SpanContext) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w := ws.m[key]; w != nil {
		w.fill = fill
		close(w.done)
		delete(ws.m, key)
	}
}

// enqueue runs fn for the readers of the wait: once, and again for a reader
// that joins more than every after the last success (a long wait re-asserts
// its task, which lets a dead worker's task be rescued); a failed fn is tried
// again by the next reader. asked says whether fn had succeeded before.
func (w *wait) enqueue(ctx context.Context, every time.Duration, fn func(context.Context) error) (asked bool, err error) {
	w.enqueueMu.Lock()
	defer w.enqueueMu.Unlock()
	asked = !w.enqueuedAt.IsZero()
	if asked && time.Since(w.enqueuedAt) < every {
		return true, nil
	}
	if err := fn(ctx); err != nil {
		return asked, err
	}
	w.enqueuedAt = time.Now()
	return asked, nil
}

// closed reports whether done is closed.
func closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}
