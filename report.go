// Package dashcache holds the domain of dashcache: the report key (customer and
// date range), its canonical form, input validation, freshness rules, and the
// small interfaces that the subpackages implement.
package dashcache

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DateLayout is the layout of every date in the API, the canonical key and the
// BI platform contract (see Day).
const DateLayout = "2006-01-02"

// MaxCustomerLen is the longest customer name accepted.
const MaxCustomerLen = 64

// MaxSpanDays is the longest date range accepted, in days, counting both ends.
const MaxSpanDays = 366

// HorizonYears is how far back a range may start by default: the default of
// DASHCACHE_EARLIEST_DATE is this many years before today.
const HorizonYears = 10

// ErrInvalidInput marks an error caused by bad input from a caller; its message
// says what to change.
var ErrInvalidInput = errors.New("invalid input")

// ReportKey names one report: which report (Report; "" is the default
// report, the BI platform contract's one), of which customer, over the
// closed date range [From, To]. It is comparable: a map key, the L1's and
// the reads' among them. Its canonical string (String), its task ID and its
// Redis keys are all derived from it.
type ReportKey struct {
	Report   string
	Customer string
	From, To Day
}

// MaxReportNameLen is the longest report name accepted.
const MaxReportNameLen = 32

// ParseReportKey validates a customer and a date range as given by a caller and
// returns the key of the default report. today is the current date in the
// service's time zone (only its year, month and day are used). Every error
// wraps ErrInvalidInput and says, in words a person can act on, what is wrong.
func ParseReportKey(customer, from, to string, today time.Time) (ReportKey, error) {
	if err := CheckCustomer(customer); err != nil {
		return ReportKey{}, err
	}
	f, err := parseDate("from", from)
	if err != nil {
		return ReportKey{}, err
	}
	t, err := parseDate("to", to)
	if err != nil {
		return ReportKey{}, err
	}
	if t < f {
		return ReportKey{}, invalid("from (%s) must not be after to (%s)", from, to)
	}
	if days := int(t-f) + 1; days > MaxSpanDays {
		return ReportKey{}, invalid("the range %s..%s spans %d days; at most %d are allowed", from, to, days, MaxSpanDays)
	}
	if t > DayOf(today) {
		return ReportKey{}, invalid("to (%s) is in the future; the latest allowed date is today, %s", to, DayOf(today))
	}
	return ReportKey{Customer: customer, From: f, To: t}, nil
}

// Earliest returns the earliest date a range may start at: setting, or, if it
// is zero, HorizonYears before today (in today's own location).
func Earliest(setting, today time.Time) Day {
	if !setting.IsZero() {
		return DayOf(setting)
	}
	return DayOf(today.AddDate(-HorizonYears, 0, 0))
}

// CheckEarliest returns an error (wrapping ErrInvalidInput) if the range
// starts before earliest (see Earliest): a report nobody should need, which
// would be computed and cached like any other.
func (k ReportKey) CheckEarliest(earliest Day) error {
	if k.From < earliest {
		return invalid("from (%s) is before %s, the earliest date served (DASHCACHE_EARLIEST_DATE)", k.From, earliest)
	}
	return nil
}

// ParseCanonical parses a key in its canonical form, as built by
// ReportKey.String: "customer|from|to" for the default report,
// "report|customer|from|to" for a named one. It checks syntax only, not the
// range limits that depend on today's date.
func ParseCanonical(s string) (ReportKey, error) {
	parts := strings.Split(s, "|")
	var k ReportKey
	switch len(parts) {
	case 3:
	case 4:
		if err := CheckReportName(parts[0]); err != nil {
			return ReportKey{}, err
		}
		k.Report, parts = parts[0], parts[1:]
	default:
		return ReportKey{}, invalid("canonical key %q is not [report|]customer|from|to", s)
	}
	if err := CheckCustomer(parts[0]); err != nil {
		return ReportKey{}, err
	}
	var err error
	if k.From, err = parseDate("from", parts[1]); err != nil {
		return ReportKey{}, err
	}
	if k.To, err = parseDate("to", parts[2]); err != nil {
		return ReportKey{}, err
	}
	if k.To < k.From {
		return ReportKey{}, invalid("canonical key %q has from after to", s)
	}
	k.Customer = parts[0]
	return k, nil
}

// String returns the canonical key: "customer|YYYY-MM-DD|YYYY-MM-DD" for the
// default report, and the same behind "report|" for a named one. It is the
// one spelling of a report used in Redis keys, task IDs, fill notifications
// and logs.
func (k ReportKey) String() string {
	b := make([]byte, 0, len(k.Report)+len(k.Customer)+2*len(DateLayout)+3)
	if k.Report != "" {
		b = append(append(b, k.Report...), '|')
	}
	b = append(append(b, k.Customer...), '|')
	b = append(k.From.AppendTo(b), '|')
	return string(k.To.AppendTo(b))
}

// TaskID returns the asynq task ID of the fill task for this report, so that
// the queue itself refuses a second pending task for the same report.
func (k ReportKey) TaskID() string {
	return "report:" + k.String()
}

// Closed reports whether the range ends before today, so that its numbers no
// longer change.
func (k ReportKey) Closed(today time.Time) bool {
	return k.To < DayOf(today)
}

// Freshness rules: how long a filled report is served.
const (
	// ClosedTTL is how long a report of a closed range is kept.
	ClosedTTL = 7 * 24 * time.Hour
	// OpenTTL is how long a report of a range that includes today is fresh.
	OpenTTL = 5 * time.Minute
	// StaleFor is how long a report that is no longer fresh may still be
	// served (X-Cache: stale) while one refresh runs.
	StaleFor = time.Hour
)

// Refresh says when a fill task calls the BI platform for a report that is
// cached. The zero value refreshes only a report that is missing or stale.
type Refresh struct {
	// Force refreshes even a fresh report.
	Force bool
	// Seen, if set, also refreshes a fresh report, unless it was computed
	// after Seen: an early refresh asked by a reader who saw the report
	// computed at Seen, which a refresh since has already answered.
	Seen time.Time
}

// Freshness is how long a report filled now stays fresh: Open while its
// range includes today, Closed once the range has ended. A zero field takes
// OpenTTL or ClosedTTL.
type Freshness struct {
	Open, Closed time.Duration
}

// TTL returns how long the report of k, filled now, stays fresh.
func (f Freshness) TTL(k ReportKey, today time.Time) time.Duration {
	if k.Closed(today) {
		return cmp.Or(f.Closed, ClosedTTL)
	}
	return cmp.Or(f.Open, OpenTTL)
}

// CheckCustomer returns an error (wrapping ErrInvalidInput) if c is not a valid
// customer name: 1-64 characters of A-Z a-z 0-9 . _ -.
func CheckCustomer(c string) error {
	if c == "" {
		return invalid("customer is required: 1-%d characters of A-Z a-z 0-9 . _ -", MaxCustomerLen)
	}
	if len(c) > MaxCustomerLen {
		return invalid("customer is %d characters long; at most %d are allowed", len(c), MaxCustomerLen)
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-') {
			return invalid("customer may contain only A-Z a-z 0-9 . _ - (found %q at position %d)", rune(b), i+1)
		}
	}
	return nil
}

// CheckReportName returns an error (wrapping ErrInvalidInput) if name is not
// a valid report name: 1-32 characters of a-z 0-9 _ -.
func CheckReportName(name string) error {
	if name == "" || len(name) > MaxReportNameLen {
		return invalid("a report name is 1-%d characters of a-z 0-9 _ -; got %q", MaxReportNameLen, name)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_' || b == '-') {
			return invalid("a report name may contain only a-z 0-9 _ - (found %q at position %d in %q)", rune(b), i+1, name)
		}
	}
	return nil
}

func parseDate(name, s string) (Day, error) {
	if s == "" {
		return 0, invalid("%s is required, as a date YYYY-MM-DD", name)
	}
	d, ok := ParseDay(s)
	if !ok {
		return 0, invalid("%s must be a real date YYYY-MM-DD, got %q", name, s)
	}
	return d, nil
}

// inputError is bad input; its message alone is what a caller is shown.
type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}
