package dashcache

import "time"

// Day is a calendar date, counted in days from 1970-01-01 (proleptic
// Gregorian): a civil date with no clock and no zone, comparable with ==
// and ordered with <, so that a ReportKey made of Days is a map key that
// means what it says. The dates of a report key, a change and a preset are
// Days.
type Day int32

const secondsPerDay = 24 * 60 * 60

// CivilDay returns the Day of year, month and day, normalised as time.Date
// normalises them (month 13 is January of the next year, day 0 the last of
// the month before).
func CivilDay(year int, month time.Month, day int) Day {
	return Day(time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay)
}

// DayOf returns t's calendar date in t's own location.
func DayOf(t time.Time) Day {
	y, m, d := t.Date()
	return CivilDay(y, m, d)
}

// Time returns the day's midnight UTC.
func (d Day) Time() time.Time { return time.Unix(int64(d)*secondsPerDay, 0).UTC() }

// Date returns the day's year, month and day of the month.
func (d Day) Date() (year int, month time.Month, day int) { return d.Time().Date() }

// String returns the day as YYYY-MM-DD (DateLayout).
func (d Day) String() string { return string(d.AppendTo(make([]byte, 0, len(DateLayout)))) }

// AppendTo appends the day as YYYY-MM-DD (DateLayout) to b.
func (d Day) AppendTo(b []byte) []byte {
	y, m, dd := d.Date()
	if y < 0 || y > 9999 {
		return d.Time().AppendFormat(b, DateLayout)
	}
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append(b, byte('0'+int(m)/10), byte('0'+int(m)%10), '-')
	return append(b, byte('0'+dd/10), byte('0'+dd%10))
}

// ParseDay parses a real date YYYY-MM-DD; ok is false for anything else
// (2025-02-30 and 2025-13-01 included).
func ParseDay(s string) (d Day, ok bool) {
	if d, ok = quickDate(s); ok {
		return d, true
	}
	// time.Parse accepts only real dates: 2025-02-30 and 2025-13-01 fail.
	t, err := time.Parse(DateLayout, s)
	if err != nil || len(s) != len(DateLayout) {
		return 0, false
	}
	return DayOf(t), true
}

// quickDate parses a real date YYYY-MM-DD of ASCII digits as time.Parse
// does, at a fraction of its cost (every read parses two); ok is false for
// anything else, left to time.Parse and its errors.
func quickDate(s string) (d Day, ok bool) {
	if len(s) != len(DateLayout) || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	n := [3]int{}
	for i, part := range [3]string{s[:4], s[5:7], s[8:]} {
		for _, c := range []byte(part) {
			if c < '0' || c > '9' {
				return 0, false
			}
			n[i] = n[i]*10 + int(c-'0')
		}
	}
	if n[1] < 1 || n[1] > 12 || n[2] < 1 || n[2] > daysIn(n[0], time.Month(n[1])) {
		return 0, false // 2025-02-30 is no date
	}
	return CivilDay(n[0], time.Month(n[1]), n[2]), true
}

// daysIn returns the number of days of the month.
func daysIn(year int, month time.Month) int {
	switch month {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
