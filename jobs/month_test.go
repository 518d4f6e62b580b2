package jobs

import (
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

// TestMonthTTL: an open month is fresh no later than midnight; closed
// months are fresh for the second half of their freshness, spread by key.
func TestMonthTTL(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	now := time.Date(2026, 12, 5, 23, 0, 0, 0, berlin)
	dec := dashcache.MonthOf(dashcache.ReportKey{Customer: "acme"}, dashcache.DayOf(now))
	if got := monthTTL(dec, 5*time.Minute, now); got != 5*time.Minute {
		t.Errorf("the open month at 23:00: %s, want its freshness, 5m", got)
	}
	if got := monthTTL(dec, 5*time.Minute, now.Add(57*time.Minute)); got != 3*time.Minute {
		t.Errorf("the open month at 23:57: %s, want 3m, to midnight", got)
	}
	seen := map[time.Duration]bool{}
	for m := time.January; m <= time.November; m++ {
		k := dashcache.MonthOf(dashcache.ReportKey{Customer: "acme"}, dashcache.CivilDay(2026, m, 1))
		got := monthTTL(k, dashcache.ClosedTTL, now)
		if got < dashcache.ClosedTTL/2 || got > dashcache.ClosedTTL {
			t.Errorf("%s: %s, want from %s to %s", k, got, dashcache.ClosedTTL/2, dashcache.ClosedTTL)
		}
		if monthTTL(k, dashcache.ClosedTTL, now) != got {
			t.Errorf("%s: not the same freshness at each fill", k)
		}
		seen[got.Round(time.Hour)] = true
	}
	if len(seen) < 6 {
		t.Errorf("the 11 closed months come due at %d distinct hours; want them spread", len(seen))
	}
}
