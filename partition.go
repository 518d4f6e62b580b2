package dashcache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
)

// Partition says how a report whose data is additive by day is cached by
// calendar month: every month a range touches is a report of its own (its
// partition: ReportKey over the whole month, filled, locked and notified
// like any report), and the answer for a range is assembled from them: the
// rows of its days, in order, and the totals recomputed over those rows.
// Measures that do not add up by day (distinct counts, ratios) cannot be
// partitioned: such reports stay keyed by range.
type Partition struct {
	// Rows is the top-level field of the answer (a JSON object) that holds
	// the rows, or "." when the answer is the rows itself (a JSON array, as
	// a SQL back end answers).
	Rows string
	// DayField is the rows' field holding their date: a string that begins
	// with YYYY-MM-DD (a date, or a timestamp whose date is the day's).
	DayField string
	// FromField and ToField, when set, are top-level fields of the answer
	// that hold its range's first and last day: an assembled answer holds
	// the read range's.
	FromField, ToField string
	// Totals are top-level fields of the answer recomputed over the rows
	// of the read range, each by its Total. Other top-level fields are
	// taken as they are from the first month's answer.
	Totals map[string]Total
}

// Total is how a total is recomputed over rows.
type Total string

// The totals a Partition recomputes. Sum, Min and Max are exact on decimal
// numbers (JSON numbers, or strings of one, as Cube answers); null values
// are left out, as SQL's aggregates leave NULLs out.
const (
	TotalSum   Total = "sum"   // of the rows' field; 0 over no rows
	TotalMin   Total = "min"   // the least value of the rows' field; null over none
	TotalMax   Total = "max"   // the greatest; null over none
	TotalCount Total = "count" // the number of rows (the field is the total's own)
)

// Totals are the totals a Partition may declare, in the order documented.
var Totals = []Total{TotalSum, TotalMin, TotalMax, TotalCount}

// RowsAnswer is Partition.Rows for an answer that is the rows itself.
const RowsAnswer = "."

// SimulatorPartition is how the default report of the BI platform
// contract (the simulator's shape: days, revenue in cents, orders, and a
// series of {date, revenue, orders}) is partitioned with
// DASHCACHE_PARTITION=month.
var SimulatorPartition = &Partition{
	Rows: "series", DayField: "date", FromField: "from", ToField: "to",
	Totals: map[string]Total{"days": TotalCount, "revenue": TotalSum, "orders": TotalSum},
}

// MonthOf returns the partition of k's report and customer that holds day:
// the whole calendar month.
func MonthOf(k ReportKey, day Day) ReportKey {
	y, m, _ := day.Date()
	k.From, k.To = CivilDay(y, m, 1), CivilDay(y, m+1, 0)
	return k
}

// Months returns the partitions of k's range: one per month it touches, in
// order (at most 13 for a range of MaxSpanDays).
func Months(k ReportKey) []ReportKey {
	var out []ReportKey
	for d := k.From; d <= k.To; {
		m := MonthOf(k, d)
		out = append(out, m)
		d = m.To + 1
	}
	return out
}

// IsMonth reports whether k is a partition: its range is one whole month.
func IsMonth(k ReportKey) bool { return MonthOf(k, k.From) == k }

// Validate returns an error (wrapping ErrInvalidInput) saying what is wrong
// with p.
func (p *Partition) Validate() error {
	if p.Rows == "" {
		return invalid(`rows is required: the answer's field that holds the rows, or "." when the answer is the rows`)
	}
	if p.DayField == "" {
		return invalid("day_field is required: the rows' field that holds their date (YYYY-MM-DD)")
	}
	if p.Rows == RowsAnswer && (len(p.Totals) > 0 || p.FromField != "" || p.ToField != "") {
		return invalid(`with rows ".", the answer is the rows alone: it has no totals, from_field or to_field to recompute`)
	}
	fields := map[string]string{p.Rows: "rows"}
	for _, f := range []struct{ name, field string }{{"from_field", p.FromField}, {"to_field", p.ToField}} {
		if f.field == "" {
			continue
		}
		if other := fields[f.field]; other != "" {
			return invalid("%s %q is also %s", f.name, f.field, other)
		}
		fields[f.field] = f.name
	}
	for _, name := range slices.Sorted(maps.Keys(p.Totals)) {
		if !slices.Contains(Totals, p.Totals[name]) {
			return invalid("totals: %s is %q; a total is one of %s (distinct counts and ratios do not add up by day: leave such a report unpartitioned)", name, p.Totals[name], joinTotals())
		}
		if other := fields[name]; other != "" {
			return invalid("totals: %s is also %s", name, other)
		}
	}
	return nil
}

func joinTotals() string {
	s := make([]string, len(Totals))
	for i, t := range Totals {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// partAnswer is one month's answer, parsed.
type partAnswer struct {
	fields []field // the top-level fields in order; nil for a rows answer
	rows   []row
}

type field struct {
	name  string
	value json.RawMessage
}

type row struct {
	raw    json.RawMessage
	day    Day
	values map[string]json.RawMessage
}

// Check returns an error if data, a month's answer, is not what p says:
// an answer that cannot be assembled (no rows, a row without its date, a
// total missing). The error says what is missing.
func (p *Partition) Check(data []byte) error {
	_, err := p.parse(data)
	return err
}

// parse parses a month's answer.
func (p *Partition) parse(data []byte) (partAnswer, error) {
	var a partAnswer
	rows := json.RawMessage(data)
	if p.Rows != RowsAnswer {
		var err error
		if a.fields, err = objectFields(data); err != nil {
			return a, fmt.Errorf("partition: the answer is not a JSON object with the rows in %q: %w", p.Rows, err)
		}
		found := map[string]bool{}
		for _, f := range a.fields {
			found[f.name] = true
			if f.name == p.Rows {
				rows = f.value
			}
		}
		for _, name := range append(slices.Sorted(maps.Keys(p.Totals)), p.Rows, p.FromField, p.ToField) {
			if name != "" && !found[name] {
				return a, fmt.Errorf("partition: the answer has no field %q", name)
			}
		}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(rows, &raws); err != nil {
		return a, fmt.Errorf("partition: the rows (%q) are not a JSON array: %w", p.Rows, err)
	}
	a.rows = make([]row, len(raws))
	for i, raw := range raws {
		r := row{raw: raw}
		if err := json.Unmarshal(raw, &r.values); err != nil {
			return a, fmt.Errorf("partition: row %d is not a JSON object: %w", i+1, err)
		}
		var day string
		if err := json.Unmarshal(r.values[p.DayField], &day); err != nil || len(day) < len(DateLayout) {
			return a, fmt.Errorf("partition: row %d has no date in %q (a string YYYY-MM-DD...)", i+1, p.DayField)
		}
		d, ok := ParseDay(day[:len(DateLayout)])
		if !ok || len(day) > len(DateLayout) && day[len(DateLayout)] != 'T' && day[len(DateLayout)] != ' ' {
			return a, fmt.Errorf("partition: row %d has %q in %q, not a date YYYY-MM-DD", i+1, day, p.DayField)
		}
		r.day = d
		a.rows[i] = r
	}
	return a, nil
}

// objectFields returns the fields of a JSON object, in order.
func objectFields(data []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var out []field
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, field{t.(string), v})
	}
	return out, nil
}

// Assemble returns the answer for k from parts, the answers of Months(k),
// in order: the rows of k's days (each month's rows of its own month only:
// a row that spilled into another month's answer is not counted twice), in
// order of their days, and the totals recomputed over them, exactly.
func (p *Partition) Assemble(k ReportKey, parts [][]byte) ([]byte, error) {
	months := Months(k)
	if len(parts) != len(months) {
		return nil, fmt.Errorf("partition: %d answers for the %d months of %s", len(parts), len(months), k)
	}
	var first partAnswer
	var rows []row
	for i, data := range parts {
		a, err := p.parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", months[i], err)
		}
		if i == 0 {
			first = a
		}
		from, to := max(k.From, months[i].From), min(k.To, months[i].To)
		for _, r := range a.rows {
			if from <= r.day && r.day <= to {
				rows = append(rows, r)
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b row) int { return int(a.day - b.day) })
	var b bytes.Buffer
	writeRows := func() {
		b.WriteByte('[')
		for i, r := range rows {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(r.raw)
		}
		b.WriteByte(']')
	}
	if p.Rows == RowsAnswer {
		writeRows()
		return b.Bytes(), nil
	}
	b.WriteByte('{')
	for i, f := range first.fields {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(f.name) // a string always marshals
		b.Write(name)
		b.WriteByte(':')
		switch total, isTotal := p.Totals[f.name]; {
		case f.name == p.Rows:
			writeRows()
		case f.name == p.FromField:
			b.WriteString(`"` + k.From.String() + `"`)
		case f.name == p.ToField:
			b.WriteString(`"` + k.To.String() + `"`)
		case isTotal:
			v, err := total.over(f.name, rows)
			if err != nil {
				return nil, err
			}
			b.Write(v)
		default:
			b.Write(f.value)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// over computes the total named name over rows.
func (t Total) over(name string, rows []row) ([]byte, error) {
	if t == TotalCount {
		return fmt.Appendf(nil, "%d", len(rows)), nil
	}
	var acc *decimal
	for _, r := range rows {
		raw := r.values[name]
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		d, err := parseDecimal(raw)
		if err != nil {
			return nil, fmt.Errorf("partition: total %s of a row of %s: %w", name, r.day, err)
		}
		switch {
		case acc == nil:
			acc = d
		case t == TotalSum:
			acc = acc.add(d)
		case t == TotalMin && d.rat.Cmp(acc.rat) < 0, t == TotalMax && d.rat.Cmp(acc.rat) > 0:
			acc = d
		}
	}
	switch {
	case acc == nil && t == TotalSum:
		return []byte("0"), nil
	case acc == nil:
		return []byte("null"), nil
	case t == TotalSum:
		return acc.json(), nil
	}
	return acc.raw, nil
}

// decimal is an exact decimal number read from JSON: a number, or a string
// holding one.
type decimal struct {
	rat    *big.Rat
	scale  int  // digits after the point it is written with
	quoted bool // written as a JSON string
	raw    json.RawMessage
}

// parseDecimal reads a JSON number, or a JSON string of one.
func parseDecimal(raw json.RawMessage) (*decimal, error) {
	d := &decimal{raw: raw}
	s := string(raw)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		d.quoted = true
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || strings.ContainsAny(s, "/") {
		return nil, fmt.Errorf("%s is not a decimal number", raw)
	}
	d.rat = r
	mant, exp, _ := strings.Cut(strings.ToLower(s), "e")
	if _, frac, ok := strings.Cut(mant, "."); ok {
		d.scale = len(frac)
	}
	if exp != "" {
		var e int
		fmt.Sscan(exp, &e)
		d.scale = max(d.scale-e, 0)
	}
	return d, nil
}

// add returns d+o, written with the larger scale, quoted if either is.
func (d *decimal) add(o *decimal) *decimal {
	return &decimal{rat: new(big.Rat).Add(d.rat, o.rat), scale: max(d.scale, o.scale), quoted: d.quoted || o.quoted}
}

// json writes a sum: its digits at its scale, quoted if its terms were.
func (d *decimal) json() []byte {
	s := d.rat.FloatString(d.scale)
	if d.quoted {
		return []byte(`"` + s + `"`)
	}
	return []byte(s)
}
