package scheduler

import (
	"testing"
	"time"
)

// TestDeadlineAfter: a plan's deadline is the first time of day after the
// firing, in the firing's zone, the next day when the time has passed, and
// across a change of the clocks.
func TestDeadlineAfter(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		deadline, fired, want string
	}{
		{"06:00", "2026-12-15 02:00", "2026-12-15 06:00"},
		{"02:05", "2026-12-15 02:00", "2026-12-15 02:05"},
		{"06:00", "2026-12-15 23:00", "2026-12-16 06:00"},
		{"02:00", "2026-12-15 02:00", "2026-12-16 02:00"}, // strictly after
		{"00:00", "2026-12-31 22:00", "2027-01-01 00:00"},
		{"06:00", "2026-03-29 01:00", "2026-03-29 06:00"}, // 4 hours: 02:00-03:00 does not exist that night
	} {
		c0, ok, err := Plan{Deadline: c.deadline}.deadline()
		if err != nil || !ok {
			t.Fatalf("deadline %q: %v, %v", c.deadline, ok, err)
		}
		if got := c0.after(at(c.fired)); !got.Equal(at(c.want)) {
			t.Errorf("deadline %s after %s = %s, want %s", c.deadline, c.fired, got, c.want)
		}
	}
	if _, ok, err := (Plan{}).deadline(); ok || err != nil {
		t.Errorf("no deadline: %v, %v", ok, err)
	}
}
