package dashcache_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

// TestChangedReports: a change of named reports makes only those stale; a
// change naming none makes every report stale, the default one included;
// a report not in the catalogue is refused.
func TestChangedReports(t *testing.T) {
	today := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	jan, err := dashcache.ParseReportKey("acme", "2025-01-01", "2025-01-31", today)
	if err != nil {
		t.Fatal(err)
	}
	revenue, orders := jan, jan
	revenue.Report, orders.Report = "revenue", "orders"
	known := dashcache.Served{Named: []string{"orders", "revenue"}}

	all, err := dashcache.ParseChanged([]string{"acme"}, nil, "2025-01-15", "2025-01-15", today, known)
	if err != nil {
		t.Fatal(err)
	}
	named, err := dashcache.ParseChanged([]string{"acme"}, []string{"revenue"}, "2025-01-15", "2025-01-15", today, known)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ch   dashcache.Changed
		k    dashcache.ReportKey
		want bool
	}{
		{all, jan, true}, {all, revenue, true}, {all, orders, true},
		{named, jan, false}, {named, revenue, true}, {named, orders, false},
	} {
		if got := c.ch.Overlaps(c.k); got != c.want {
			t.Errorf("%+v overlaps %s = %v, want %v", c.ch, c.k, got, c.want)
		}
	}
	if _, err := dashcache.ParseChanged([]string{"acme"}, []string{"churn"}, "2025-01-15", "2025-01-15", today, known); !errors.Is(err, dashcache.ErrInvalidInput) ||
		!strings.Contains(err.Error(), "orders, revenue") {
		t.Errorf("a report not in the catalogue: %v", err)
	}
}
