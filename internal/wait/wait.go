// Package wait is how tests wait: for a condition to come true (For,
// Until), or through a window in which something must not happen (Never).
// Every wait is bounded, polls at one pace, and fails with a message that
// says what it waited for.
//
// For and Never fail the test with t.Fatalf, which ends the goroutine that
// calls it: call them only from the goroutine running the test (or
// subtest), never from one it started. Until fails nothing and may be called
// from any goroutine.
package wait

import (
	"testing"
	"time"
)

// The pace of polling: the first poll comes a millisecond after the first
// call of the condition, each later one a little later, up to every 10 ms:
// a condition that comes true at once costs the test no more, and one that
// takes seconds costs a few hundred calls.
const (
	firstInterval = time.Millisecond
	maxInterval   = 10 * time.Millisecond
)

// For calls cond until it returns true, and fails the test with t.Fatalf,
// naming what and timeout, if it has not within timeout. what completes
// "waiting for": "the worker to fill the report".
//
// cond runs on the calling goroutine, as Until calls it; it may call
// t.Fatal itself. Call For only from the test's goroutine (see the package
// doc).
func For(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Until(timeout, cond) {
		t.Fatalf("timed out after %s waiting for %s", timeout, what)
	}
}

// Until calls cond until it returns true or timeout has passed, and reports
// whether it returned true. It calls cond at once, then after an interval
// that grows from 1 ms to 10 ms, and a last time once timeout has passed: a
// false result means cond was still false after timeout.
//
// Until fails nothing: use it where a failure should say what was seen last,
// or off the test's goroutine.
//
//	if !wait.Until(10*time.Second, func() bool { n = count(); return n >= 3 }) {
//		t.Fatalf("%d readers joined the wait, want 3", n)
//	}
func Until(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	interval := firstInterval
	for {
		if cond() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		time.Sleep(min(interval, left))
		interval = min(2*interval, maxInterval)
	}
}

// Never checks that cond stays false for the whole of d: it polls cond as
// Until does, the last time once d has passed, and fails the test with
// t.Fatalf, naming what (the thing that must not happen: "a second BI
// call"), as soon as cond returns true.
//
// A check that something did not happen is only as good as its window:
// choose d so that the thing, had it been set off, would show within it
// even on a loaded machine under the race detector, that is several times
// (five or more) the time it takes when it does happen, and not under a
// few hundred milliseconds. Where an event marks that whatever could have
// happened has (the queues are drained; a server shut down once its
// background work ended), wait for that event with For and check once
// after it instead: that is exact, and takes no longer than it must.
//
// Call Never only from the test's goroutine (see the package doc).
func Never(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	start := time.Now()
	if Until(d, cond) {
		t.Fatalf("%s happened %s into a window of %s in which it must not", what, time.Since(start).Round(time.Millisecond), d)
	}
}
