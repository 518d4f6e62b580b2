package dashcache

import (
	"context"
	"slices"
	"time"
)

// Changed says whose data changed, and on which days: what an invalidation
// is told (POST /v1/invalidate, dashcache invalidate).
type Changed struct {
	// Customers whose data changed; nil: every customer.
	Customers []string
	// Reports whose data changed (names of the catalogue); nil: every
	// report, the default one included.
	Reports []string
	// From and To are the first and last day changed.
	From, To Day
}

// AllCustomers, as the only customer, names every customer.
const AllCustomers = "*"

// ParseChanged checks an invalidation's input: customers (AllCustomers
// alone: every customer), reports (none: every report; else names among
// served's) and the days from..to, none after today. Every error wraps
// ErrInvalidInput and says what is accepted.
func ParseChanged(customers, reports []string, from, to string, today time.Time, served Served) (Changed, error) {
	var ch Changed
	for _, r := range reports {
		if r == "" {
			return ch, invalid("reports: a report's name is 1-%d characters; leave reports out for every report", MaxReportNameLen)
		}
		if err := served.Check(r); err != nil {
			return ch, err
		}
	}
	if len(reports) > 0 {
		ch.Reports = reports
	}
	switch {
	case len(customers) == 0:
		return ch, invalid(`customers is required: a list of customers, or "*" for every customer`)
	case len(customers) > MaxWarmKeys:
		return ch, invalid("%d customers given; at most %d at once (or \"*\" for every customer)", len(customers), MaxWarmKeys)
	case len(customers) == 1 && customers[0] == AllCustomers:
	default:
		for _, c := range customers {
			if c == AllCustomers {
				return ch, invalid(`"*" (every customer) must be given alone`)
			}
			if err := CheckCustomer(c); err != nil {
				return ch, err
			}
		}
		ch.Customers = customers
	}
	var err error
	if ch.From, err = parseDate("from", from); err != nil {
		return ch, err
	}
	if ch.To, err = parseDate("to", to); err != nil {
		return ch, err
	}
	if ch.To < ch.From {
		return ch, invalid("from (%s) must not be after to (%s)", from, to)
	}
	if ch.From > DayOf(today) {
		return ch, invalid("from (%s) is in the future; no report covers it yet", from)
	}
	return ch, nil
}

// Overlaps reports whether the report is one of the changed ones and its
// range covers any of the changed days.
func (ch Changed) Overlaps(k ReportKey) bool {
	return k.To >= ch.From && k.From <= ch.To && (ch.Reports == nil || slices.Contains(ch.Reports, k.Report))
}

// DefaultReadWithin is, by default, how lately a report must have been read
// for an invalidation (or a recently_read warming plan) to refresh it;
// ReadsKept is how long reads are remembered, the longest such window.
const (
	DefaultReadWithin = 24 * time.Hour
	ReadsKept         = 7 * 24 * time.Hour
)

// ParseReadWithin parses a read window: a Go duration from 0 to ReadsKept.
// The error wraps ErrInvalidInput.
func ParseReadWithin(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d > ReadsKept {
		return 0, invalid("want a Go duration up to %s, such as 24h; got %q", ReadsKept, v)
	}
	return d, nil
}

// Invalidation counts what an invalidation of changed data did.
type Invalidation struct {
	// Matched is the number of cached reports (as the index knows them)
	// whose range overlaps the changed days.
	Matched int `json:"matched"`
	// MarkedStale is the number of them that were fresh and are now stale.
	MarkedStale int `json:"marked_stale"`
	// Refreshed is the number of those read lately, whose refresh is queued
	// at once on the warming queue.
	Refreshed int `json:"refreshed"`
	// APIs is the number of API processes asked for the reads they had seen
	// (when reads count: readWithin > 0), APIsUnanswered the number of them
	// that did not answer in time: their latest reads (up to 10 s) may not
	// have counted.
	APIs           int `json:"apis"`
	APIsUnanswered int `json:"apis_unanswered"`
}

// Invalidator makes the cached reports that cover changed data stale, and
// refreshes those read within readWithin (0: none); jobs.Enqueuer is one.
type Invalidator interface {
	Invalidate(ctx context.Context, ch Changed, readWithin time.Duration) (Invalidation, error)
}
