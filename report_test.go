package dashcache_test

import (
	"errors"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

func TestParseReportKey(t *testing.T) {
	// 23:30 in Berlin on 2025-03-10 is still 22:30 UTC on the same day; 00:30
	// in Berlin on 2025-03-11 is already the 11th there.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	lateUTC := time.Date(2025, 3, 10, 23, 30, 0, 0, time.UTC)
	cases := []struct {
		customer, from, to string
		today              time.Time
		ok                 bool
	}{
		{"acme", "2025-01-01", "2025-01-31", lateUTC, true},
		{"a", "2025-03-10", "2025-03-10", lateUTC, true},
		{"acme", "2025-03-11", "2025-03-11", lateUTC, false},
		{"acme", "2025-03-11", "2025-03-11", lateUTC.In(berlin), true},
		{"acme", "2024-03-10", "2025-03-10", lateUTC, true},  // 366 days (leap year)
		{"acme", "2024-03-09", "2025-03-10", lateUTC, false}, // 367 days
		{"acme", "2024-02-29", "2024-02-29", lateUTC, true},
		{"acme", "2023-02-29", "2023-03-01", lateUTC, false},
		{"ac/me", "2025-01-01", "2025-01-31", lateUTC, false},
	}
	for _, c := range cases {
		k, err := dashcache.ParseReportKey(c.customer, c.from, c.to, c.today)
		if c.ok != (err == nil) {
			t.Errorf("%s %s..%s today %s: err %v, want ok=%v", c.customer, c.from, c.to, c.today, err, c.ok)
			continue
		}
		if err != nil && !errors.Is(err, dashcache.ErrInvalidInput) {
			t.Errorf("error %v does not match ErrInvalidInput", err)
		}
		if err == nil {
			back, err := dashcache.ParseCanonical(k.String())
			if err != nil || back != k {
				t.Errorf("canonical round trip of %v: %v %v", k, back, err)
			}
		}
	}
}

func TestCanonicalKeyAndTaskID(t *testing.T) {
	k, err := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if k.String() != "acme|2025-01-01|2025-01-31" || k.TaskID() != "report:acme|2025-01-01|2025-01-31" {
		t.Errorf("canonical %q task ID %q", k.String(), k.TaskID())
	}
	for _, bad := range []string{"", "acme", "acme|2025-01-01", "acme|2025-01-31|2025-01-01", "a|b|c", "a|2025-01-01|2025-01-02|x"} {
		if _, err := dashcache.ParseCanonical(bad); err == nil {
			t.Errorf("ParseCanonical(%q) accepted it", bad)
		}
	}
}

func TestTTL(t *testing.T) {
	today := time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)
	closed, _ := dashcache.ParseReportKey("acme", "2025-03-01", "2025-03-09", today)
	open, _ := dashcache.ParseReportKey("acme", "2025-03-01", "2025-03-10", today)
	var def dashcache.Freshness
	if def.TTL(closed, today) != dashcache.ClosedTTL || def.TTL(open, today) != dashcache.OpenTTL {
		t.Errorf("TTL closed %s open %s", def.TTL(closed, today), def.TTL(open, today))
	}
	hourly := dashcache.Freshness{Open: time.Minute, Closed: time.Hour}
	if hourly.TTL(closed, today) != time.Hour || hourly.TTL(open, today) != time.Minute {
		t.Errorf("overridden TTL closed %s open %s", hourly.TTL(closed, today), hourly.TTL(open, today))
	}
}

func TestNamedReportKey(t *testing.T) {
	k, err := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k.Report = "revenue"
	if k.String() != "revenue|acme|2025-01-01|2025-01-31" || k.TaskID() != "report:revenue|acme|2025-01-01|2025-01-31" {
		t.Errorf("canonical %q task ID %q", k.String(), k.TaskID())
	}
	back, err := dashcache.ParseCanonical(k.String())
	if err != nil || back != k {
		t.Errorf("canonical round trip of %+v: %+v %v", k, back, err)
	}
	for _, bad := range []string{"Revenue|acme|2025-01-01|2025-01-31", "|acme|2025-01-01|2025-01-31",
		"a-report-name-longer-than-32-char|acme|2025-01-01|2025-01-31", "rev.enue|acme|2025-01-01|2025-01-31"} {
		if _, err := dashcache.ParseCanonical(bad); !errors.Is(err, dashcache.ErrInvalidInput) {
			t.Errorf("ParseCanonical(%q) = %v, want ErrInvalidInput", bad, err)
		}
	}
}

// TestReportKeyCompares: a key is a map key that means its report, however
// its dates were arrived at (a parse, a preset, arithmetic on days).
func TestReportKeyCompares(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	today := time.Date(2025, 3, 1, 0, 30, 0, 0, berlin) // still Feb 28 in UTC
	parsed, err := dashcache.ParseReportKey("acme", "2025-02-01", "2025-02-28", today)
	if err != nil {
		t.Fatal(err)
	}
	preset, err := dashcache.PresetKey("acme", "previous_month", today)
	if err != nil {
		t.Fatal(err)
	}
	built := dashcache.ReportKey{Customer: "acme", From: dashcache.CivilDay(2025, 2, 1), To: dashcache.CivilDay(2025, 3, 0)}
	seen := map[dashcache.ReportKey]int{parsed: 1}
	seen[preset]++
	seen[built]++
	if len(seen) != 1 || seen[parsed] != 3 {
		t.Errorf("one report under several keys: %v", seen)
	}
}

func TestDay(t *testing.T) {
	for _, s := range []string{"0001-01-01", "1969-12-31", "1970-01-01", "2024-02-29", "9999-12-31"} {
		d, ok := dashcache.ParseDay(s)
		if !ok || d.String() != s || d.Time().Format(dashcache.DateLayout) != s || dashcache.DayOf(d.Time()) != d {
			t.Errorf("ParseDay(%q) = %d %v, prints %s", s, d, ok, d)
		}
	}
	if d := dashcache.CivilDay(2025, 1, 1); d-1 != dashcache.CivilDay(2024, 12, 31) {
		t.Errorf("the day before 2025-01-01 is %s", d-1)
	}
}
