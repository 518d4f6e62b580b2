// Package dashcache holds the domain of dashcache: the report key (customer and
// date range), its canonical form, input validation, freshness rules, and the
// small interfaces that the subpackages implement.
package dashcache

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DateLayout is the layout of every date in the API, the canonical key and the
// BI platform contract.
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

// ReportKey names one report: a customer and a closed date range [From, To].
// From and To are dates at midnight UTC.
type ReportKey struct {
	Customer string
	From     time.Time
	To       time.Time
}

// ParseReportKey validates a customer and a date range as given by a caller and
// returns the key. today is the current date in the service's time zone (only its
// year, month and day are used). Every error wraps ErrInvalidInput and says, in
// words a person can act on, what is wrong.
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
	if t.Before(f) {
		return ReportKey{}, invalid("from (%s) must not be after to (%s)", from, to)
	}
	if days := int(t.Sub(f).Hours()/24) + 1; days > MaxSpanDays {
		return ReportKey{}, invalid("the range %s..%s spans %d days; at most %d are allowed", from, to, days, MaxSpanDays)
	}
	if t.After(Date(today)) {
		return ReportKey{}, invalid("to (%s) is in the future; the latest allowed date is today, %s", to, Date(today).Format(DateLayout))
	}
	return ReportKey{Customer: customer, From: f, To: t}, nil
}

// Earliest returns the earliest date a range may start at: setting, or, if it
// is zero, HorizonYears before today (in today's own location).
func Earliest(setting, today time.Time) time.Time {
	if !setting.IsZero() {
		return Date(setting)
	}
	return Date(today).AddDate(-HorizonYears, 0, 0)
}

// CheckEarliest returns an error (wrapping ErrInvalidInput) if the range
// starts before earliest (see Earliest): a report nobody should need, which
// would be computed and cached like any other.
func (k ReportKey) CheckEarliest(earliest time.Time) error {
	if k.From.Before(earliest) {
		return invalid("from (%s) is before %s, the earliest date served (DASHCACHE_EARLIEST_DATE)",
			k.From.Format(DateLayout), earliest.Format(DateLayout))
	}
	return nil
}

// ParseCanonical parses a key in its canonical form "customer|from|to", as built by
// ReportKey.String. It checks syntax only, not the range limits that depend on
// today's date.
func ParseCanonical(s string) (ReportKey, error) {
	parts := strings.Split(s, "|")
	if len(parts) != 3 {
		return ReportKey{}, invalid("canonical key %q is not customer|from|to", s)
	}
	if err := CheckCustomer(parts[0]); err != nil {
		return ReportKey{}, err
	}
	f, err := parseDate("from", parts[1])
	if err != nil {
		return ReportKey{}, err
	}
	t, err := parseDate("to", parts[2])
	if err != nil {
		return ReportKey{}, err
	}
	if t.Before(f) {
		return ReportKey{}, invalid("canonical key %q has from after to", s)
	}
	return ReportKey{Customer: parts[0], From: f, To: t}, nil
}

// String returns the canonical key "customer|YYYY-MM-DD|YYYY-MM-DD": the one
// spelling of a report used in Redis keys, task IDs and the Idempotency-Key.
func (k ReportKey) String() string {
	return k.Customer + "|" + k.From.Format(DateLayout) + "|" + k.To.Format(DateLayout)
}

// TaskID returns the asynq task ID of the warm task for this report, so that the
// queue itself refuses a second pending task for the same report.
func (k ReportKey) TaskID() string {
	return "report:" + k.String()
}

// Date returns t's calendar date (in t's own location) as midnight UTC, the form
// that ReportKey dates take.
func Date(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Closed reports whether the range ends before today, so that its numbers no
// longer change.
func (k ReportKey) Closed(today time.Time) bool {
	return k.To.Before(Date(today))
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

// Refresh says when a warm task calls the BI platform for a report that is
// cached. The zero value refreshes only a report that is missing or stale.
type Refresh struct {
	// Force refreshes even a fresh report.
	Force bool
	// Seen, if set, also refreshes a fresh report, unless it was computed
	// after Seen: an early refresh asked by a reader who saw the report
	// computed at Seen, which a refresh since has already answered.
	Seen time.Time
}

// TTL returns how long a report filled now stays fresh.
func (k ReportKey) TTL(today time.Time) time.Duration {
	if k.Closed(today) {
		return ClosedTTL
	}
	return OpenTTL
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

func parseDate(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, invalid("%s is required, as a date YYYY-MM-DD", name)
	}
	if t, ok := quickDate(s); ok {
		return t, nil
	}
	// time.Parse accepts only real dates: 2025-02-30 and 2025-13-01 fail.
	t, err := time.Parse(DateLayout, s)
	if err != nil || len(s) != len(DateLayout) {
		return time.Time{}, invalid("%s must be a real date YYYY-MM-DD, got %q", name, s)
	}
	return t, nil
}

// quickDate parses a real date YYYY-MM-DD of ASCII digits as time.Parse
// does, at a fraction of its cost (every read parses two); ok is false for
// anything else, left to time.Parse and its errors.
func quickDate(s string) (t time.Time, ok bool) {
	if len(s) != len(DateLayout) || s[4] != '-' || s[7] != '-' {
		return time.Time{}, false
	}
	n := [3]int{}
	for i, part := range [3]string{s[:4], s[5:7], s[8:]} {
		for _, c := range []byte(part) {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
			n[i] = n[i]*10 + int(c-'0')
		}
	}
	if n[1] < 1 || n[1] > 12 || n[2] < 1 {
		return time.Time{}, false
	}
	t = time.Date(n[0], time.Month(n[1]), n[2], 0, 0, 0, 0, time.UTC)
	return t, t.Day() == n[2] // else past the month's end: 2025-02-30 is March 2nd
}

// inputError is bad input; its message alone is what a caller is shown.
type inputError struct{ msg string }

func (e *inputError) Error() string        { return e.msg }
func (e *inputError) Is(target error) bool { return target == ErrInvalidInput }

func invalid(format string, args ...any) error {
	return &inputError{msg: fmt.Sprintf(format, args...)}
}
