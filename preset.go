package dashcache

import (
	"strings"
	"time"
)

// PresetNames lists the range presets that PresetRange knows, in the order
// they are documented and offered to people.
var PresetNames = []string{
	"yesterday",
	"last_7_days",
	"last_30_days",
	"month_to_date",
	"previous_month",
	"year_to_date",
}

// PresetRange returns the date range [from, to] of the named preset, computed
// from today's calendar date (in today's own location; its clock time is
// ignored). With T = today:
//
//	yesterday       [T-1, T-1]
//	last_7_days     [T-7, T-1]
//	last_30_days    [T-30, T-1]
//	month_to_date   [first of T's month, T]
//	previous_month  [first, last day of the month before T's]
//	year_to_date    [Jan 1 of T's year, T]
//
// An unknown name is an error that wraps ErrInvalidInput and lists the names
// accepted.
func PresetRange(name string, today time.Time) (from, to Day, err error) {
	t := DayOf(today)
	y, m, _ := t.Date()
	switch name {
	case "yesterday":
		return t - 1, t - 1, nil
	case "last_7_days":
		return t - 7, t - 1, nil
	case "last_30_days":
		return t - 30, t - 1, nil
	case "month_to_date":
		return CivilDay(y, m, 1), t, nil
	case "previous_month":
		// CivilDay normalises month 0 to December of the year before.
		return CivilDay(y, m-1, 1), CivilDay(y, m, 1) - 1, nil
	case "year_to_date":
		return CivilDay(y, time.January, 1), t, nil
	}
	return 0, 0, invalid("unknown range preset %q; use one of %s", name, strings.Join(PresetNames, ", "))
}

// PresetKey returns the report key of customer over the named preset as of
// today, validated like any key a caller gives (see ParseReportKey). Every
// error wraps ErrInvalidInput.
func PresetKey(customer, preset string, today time.Time) (ReportKey, error) {
	from, to, err := PresetRange(preset, today)
	if err != nil {
		return ReportKey{}, err
	}
	return ParseReportKey(customer, from.String(), to.String(), today)
}
