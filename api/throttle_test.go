package api

import (
	"testing"
	"time"
)

// TestThrottleWindow: an address waits once it has failed limit times within
// the window, until the oldest failure leaves it; the memory is bounded.
func TestThrottleWindow(t *testing.T) {
	th := newThrottle(3, time.Minute)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	th.now = func() time.Time { return now }
	for i := range 3 {
		if w := th.wait("a"); w != 0 {
			t.Fatalf("after %d failures: wait %s", i, w)
		}
		th.add("a")
		now = now.Add(10 * time.Second)
	}
	if w := th.wait("a"); w != 30*time.Second {
		t.Errorf("after 3 failures in 20 s: wait %s, want 30s (until the first is a minute old)", w)
	}
	if w := th.wait("b"); w != 0 {
		t.Errorf("another address waits %s", w)
	}
	now = now.Add(30 * time.Second)
	if w := th.wait("a"); w != 0 {
		t.Errorf("a minute after the first failure: wait %s", w)
	}
	for i := range throttleAddrs + 10 {
		th.add(string(rune(i)))
	}
	if n := len(th.fails); n > throttleAddrs {
		t.Errorf("the throttle remembers %d addresses, want at most %d", n, throttleAddrs)
	}
}
