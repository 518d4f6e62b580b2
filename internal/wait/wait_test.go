package wait_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/wait"
)

// fakeTB records the failure of a wait run by failure, and ends its
// goroutine as testing.T's Fatalf does.
type fakeTB struct {
	testing.TB
	failed string
}

func (*fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs fn with a fakeTB, on a goroutine of its own (its Fatalf ends
// it), and returns what fn failed with; "" if it did not.
func failure(fn func(testing.TB)) string {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(tb)
	}()
	<-done
	return tb.failed
}

func TestForReturnsOnceCondHolds(t *testing.T) {
	calls := 0
	wait.For(t, "the third call", 10*time.Second, func() bool {
		calls++
		return calls == 3
	})
	if calls != 3 {
		t.Errorf("cond called %d times, want 3: For must return as soon as it holds", calls)
	}
}

func TestForFailsAfterTimeout(t *testing.T) {
	const timeout = 50 * time.Millisecond
	start := time.Now()
	var last time.Time
	msg := failure(func(tb testing.TB) {
		wait.For(tb, "the moon", timeout, func() bool {
			last = time.Now()
			return false
		})
	})
	if !strings.Contains(msg, "the moon") || !strings.Contains(msg, "50ms") {
		t.Errorf("failure %q, want it to name what was awaited and the timeout", msg)
	}
	if last.Sub(start) < timeout {
		t.Errorf("cond last called %s in, want once the %s timeout had passed", last.Sub(start), timeout)
	}
}

func TestUntil(t *testing.T) {
	calls := 0
	if !wait.Until(time.Hour, func() bool { calls++; return true }) || calls != 1 {
		t.Errorf("a cond true at once: called %d times, want 1 and true", calls)
	}
	start := time.Now()
	calls = 0
	if wait.Until(100*time.Millisecond, func() bool { calls++; return false }) {
		t.Error("a cond never true: Until reported true")
	}
	// Paced: a poll every 10 ms at most, not a spin; and called more than
	// once (at once, and after the timeout).
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond || calls < 2 || calls > 50 {
		t.Errorf("a cond never true: %d calls in %s, want at least 2 and a poll at most every 10 ms over 100 ms", calls, elapsed)
	}
}

func TestNeverFailsAsSoonAsCondHolds(t *testing.T) {
	start := time.Now()
	msg := failure(func(tb testing.TB) {
		wait.Never(tb, "a second call", time.Minute, func() bool { return time.Since(start) > 20*time.Millisecond })
	})
	if !strings.Contains(msg, "a second call") || !strings.Contains(msg, "1m0s") {
		t.Errorf("failure %q, want it to name what happened and the window", msg)
	}
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("Never failed after %s, want at once, not at the end of its window", elapsed)
	}
}

func TestNeverWatchesTheWholeWindow(t *testing.T) {
	const d = 50 * time.Millisecond
	start := time.Now()
	var last time.Time
	wait.Never(t, "anything", d, func() bool {
		last = time.Now()
		return false
	})
	if last.Sub(start) < d {
		t.Errorf("cond last called %s in, want once the %s window had passed", last.Sub(start), d)
	}
}

func ExampleUntil() {
	n := 0
	ok := wait.Until(time.Second, func() bool { n++; return n == 3 })
	fmt.Println(ok, n)
	// Output: true 3
}
