package dashcache

import (
	"testing"
	"time"
)

// FuzzQuickDate: quickDate takes exactly the dates parseDate took with
// time.Parse alone (a real YYYY-MM-DD, 10 bytes), and reads them the same.
func FuzzQuickDate(f *testing.F) {
	for _, s := range []string{"2025-01-31", "2024-02-29", "2025-02-29", "2025-13-01", "2025-00-10", "2025-04-31",
		"0000-01-01", "9999-12-31", "2025-1-01", "2025-01-01x", "+025-01-01", "2025-01-0a", "2025/01/01", "２０２５-01-01", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := time.Parse(DateLayout, s)
		parses := err == nil && len(s) == len(DateLayout)
		got, ok := quickDate(s)
		if ok != parses || ok && (got != DayOf(want) || got.String() != s || !got.Time().Equal(want)) {
			t.Errorf("quickDate(%q) = %v, %v; time.Parse: %v, %v", s, got, ok, want, err)
		}
	})
}
