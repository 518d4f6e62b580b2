package dashcache_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

func TestPresetRange(t *testing.T) {
	t.Parallel()
	day := func(s string) time.Time {
		t.Helper()
		d, err := time.Parse(dashcache.DateLayout, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// 00:30 in Berlin on 2025-03-01 is 23:30 UTC on 2025-02-28: Berlin's date
	// counts.
	berlinMar1 := time.Date(2025, 3, 1, 0, 30, 0, 0, berlin)

	cases := []struct {
		today    time.Time
		preset   string
		from, to string
	}{
		// An ordinary day, late in the day: the clock time is ignored.
		{day("2025-06-15").Add(23 * time.Hour), "yesterday", "2025-06-14", "2025-06-14"},
		{day("2025-06-15"), "last_7_days", "2025-06-08", "2025-06-14"},
		{day("2025-06-15"), "last_30_days", "2025-05-16", "2025-06-14"},
		{day("2025-06-15"), "month_to_date", "2025-06-01", "2025-06-15"},
		{day("2025-06-15"), "previous_month", "2025-05-01", "2025-05-31"},
		{day("2025-06-15"), "year_to_date", "2025-01-01", "2025-06-15"},

		// T = Jan 1: every look-back crosses into the previous year.
		{day("2025-01-01"), "yesterday", "2024-12-31", "2024-12-31"},
		{day("2025-01-01"), "last_7_days", "2024-12-25", "2024-12-31"},
		{day("2025-01-01"), "last_30_days", "2024-12-02", "2024-12-31"},
		{day("2025-01-01"), "month_to_date", "2025-01-01", "2025-01-01"},
		{day("2025-01-01"), "previous_month", "2024-12-01", "2024-12-31"},
		{day("2025-01-01"), "year_to_date", "2025-01-01", "2025-01-01"},

		// T = Mar 1 in a leap year and in a common year.
		{day("2024-03-01"), "yesterday", "2024-02-29", "2024-02-29"},
		{day("2024-03-01"), "last_7_days", "2024-02-23", "2024-02-29"},
		{day("2024-03-01"), "last_30_days", "2024-01-31", "2024-02-29"},
		{day("2024-03-01"), "month_to_date", "2024-03-01", "2024-03-01"},
		{day("2024-03-01"), "previous_month", "2024-02-01", "2024-02-29"},
		{day("2025-03-01"), "yesterday", "2025-02-28", "2025-02-28"},
		{day("2025-03-01"), "last_7_days", "2025-02-22", "2025-02-28"},
		{day("2025-03-01"), "last_30_days", "2025-01-30", "2025-02-28"},
		{day("2025-03-01"), "previous_month", "2025-02-01", "2025-02-28"},

		// T = Dec 31: year_to_date spans the whole year (366 days in 2024).
		{day("2024-12-31"), "year_to_date", "2024-01-01", "2024-12-31"},
		{day("2025-12-31"), "year_to_date", "2025-01-01", "2025-12-31"},
		{day("2025-12-31"), "month_to_date", "2025-12-01", "2025-12-31"},
		{day("2025-12-31"), "previous_month", "2025-11-01", "2025-11-30"},

		// A month with 31 days before a short one: month arithmetic must
		// not overflow (Mar 31 - 1 month is not "Feb 31").
		{day("2025-03-31"), "previous_month", "2025-02-01", "2025-02-28"},

		// today given in Berlin just after midnight: Berlin's date, not UTC's.
		{berlinMar1, "yesterday", "2025-02-28", "2025-02-28"},
		{berlinMar1, "month_to_date", "2025-03-01", "2025-03-01"},
		{berlinMar1, "previous_month", "2025-02-01", "2025-02-28"},
	}
	for _, c := range cases {
		from, to, err := dashcache.PresetRange(c.preset, c.today)
		if err != nil {
			t.Errorf("%s on %s: %v", c.preset, c.today, err)
			continue
		}
		if from.String() != c.from || to.String() != c.to {
			t.Errorf("%s on %s = %s..%s, want %s..%s", c.preset, c.today, from, to, c.from, c.to)
		}
	}
}

func TestPresetRangeUnknown(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "last_week", "Yesterday", "last_7_days "} {
		_, _, err := dashcache.PresetRange(name, time.Now())
		if !errors.Is(err, dashcache.ErrInvalidInput) {
			t.Errorf("PresetRange(%q): err %v, want ErrInvalidInput", name, err)
			continue
		}
		for _, want := range dashcache.PresetNames {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("PresetRange(%q): %q does not list %q", name, err, want)
			}
		}
	}
}

func TestPresetKey(t *testing.T) {
	t.Parallel()
	// Every preset gives a valid key on every day of a leap year and of the
	// common year after it, so callers never see a range they did not cause.
	start := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	for d := start; d.Year() < 2026; d = d.AddDate(0, 0, 1) {
		for _, p := range dashcache.PresetNames {
			if _, err := dashcache.PresetKey("acme", p, d); err != nil {
				t.Fatalf("PresetKey(acme, %s, %s): %v", p, d.Format(dashcache.DateLayout), err)
			}
		}
	}

	k, err := dashcache.PresetKey("acme", "previous_month", time.Date(2025, 1, 15, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := k.String(), "acme|2024-12-01|2024-12-31"; got != want {
		t.Errorf("key = %s, want %s", got, want)
	}

	for _, c := range []struct{ customer, preset string }{
		{"ac/me", "yesterday"},
		{"", "yesterday"},
		{"acme", "tomorrow"},
	} {
		if _, err := dashcache.PresetKey(c.customer, c.preset, start); !errors.Is(err, dashcache.ErrInvalidInput) {
			t.Errorf("PresetKey(%q, %q): err %v, want ErrInvalidInput", c.customer, c.preset, err)
		}
	}
}
