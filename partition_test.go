package dashcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/provider"
)

func day(t *testing.T, s string) dashcache.Day {
	t.Helper()
	d, ok := dashcache.ParseDay(s)
	if !ok {
		t.Fatalf("bad day %q", s)
	}
	return d
}

func TestMonths(t *testing.T) {
	k := dashcache.ReportKey{Report: "r", Customer: "acme", From: day(t, "2024-01-31"), To: day(t, "2024-03-01")}
	got := dashcache.Months(k)
	want := []string{"r|acme|2024-01-01|2024-01-31", "r|acme|2024-02-01|2024-02-29", "r|acme|2024-03-01|2024-03-31"}
	if len(got) != len(want) {
		t.Fatalf("Months(%s) = %v, want %v", k, got, want)
	}
	for i, m := range got {
		if m.String() != want[i] || !dashcache.IsMonth(m) {
			t.Errorf("month %d = %s (IsMonth %v), want %s, a month", i, m, dashcache.IsMonth(m), want[i])
		}
	}
	if dashcache.IsMonth(k) {
		t.Errorf("IsMonth(%s) = true", k)
	}
	// The longest range touches at most 13 months.
	long := dashcache.ReportKey{Customer: "acme", From: day(t, "2024-01-31"), To: day(t, "2024-01-31") + dashcache.MaxSpanDays - 1}
	if n := len(dashcache.Months(long)); n != 13 {
		t.Errorf("a range of %d days from Jan 31 touches %d months, want 13", dashcache.MaxSpanDays, n)
	}
}

func TestPartitionValidate(t *testing.T) {
	for _, tc := range []struct {
		p    dashcache.Partition
		want string
	}{
		{dashcache.Partition{DayField: "d"}, "rows is required"},
		{dashcache.Partition{Rows: "."}, "day_field is required"},
		{dashcache.Partition{Rows: ".", DayField: "d", Totals: map[string]dashcache.Total{"x": "sum"}}, `with rows "."`},
		{dashcache.Partition{Rows: "s", DayField: "d", Totals: map[string]dashcache.Total{"x": "avg"}}, `x is "avg"`},
		{dashcache.Partition{Rows: "s", DayField: "d", Totals: map[string]dashcache.Total{"s": "count"}}, "s is also rows"},
		{dashcache.Partition{Rows: "s", DayField: "d", FromField: "a", ToField: "a"}, `to_field "a" is also from_field`},
	} {
		err := tc.p.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, dashcache.ErrInvalidInput) {
			t.Errorf("Validate(%+v) = %v, want one saying %q", tc.p, err, tc.want)
		}
	}
	if err := dashcache.SimulatorPartition.Validate(); err != nil {
		t.Errorf("SimulatorPartition: %v", err)
	}
}

// TestAssembleEqualsTheSimulator assembles 200 random ranges (of up to a
// year) from the simulator's answers for their months, and compares each,
// byte for byte, with the simulator's answer for the range itself.
func TestAssembleEqualsTheSimulator(t *testing.T) {
	sim := provider.NewSimulator(provider.SimConfig{MaxLatency: -1})
	ctx := context.Background()
	query := func(k dashcache.ReportKey) []byte {
		b, err := sim.Query(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	rng := rand.New(rand.NewPCG(1, 2))
	base := day(t, "2024-01-01")
	for range 200 {
		from := base + dashcache.Day(rng.IntN(700))
		k := dashcache.ReportKey{Customer: "acme", From: from, To: from + dashcache.Day(rng.IntN(dashcache.MaxSpanDays))}
		var parts [][]byte
		for _, m := range dashcache.Months(k) {
			parts = append(parts, query(m))
		}
		got, err := dashcache.SimulatorPartition.Assemble(k, parts)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if want := query(k); string(got) != string(want) {
			t.Fatalf("%s assembled:\n%s\nthe simulator's answer:\n%s", k, got, want)
		}
	}
}

func TestAssembleTotals(t *testing.T) {
	// Each total reads the rows' field of its own name.
	p := &dashcache.Partition{Rows: "rows", DayField: "day", FromField: "from",
		Totals: map[string]dashcache.Total{"sum": "sum", "qsum": "sum", "n": "count", "none": "sum", "nomin": "min"}}
	k := dashcache.ReportKey{Customer: "acme", From: day(t, "2024-01-30"), To: day(t, "2024-02-02")}
	jan := `{"from":"x","sum":0,"qsum":"0","n":0,"none":0,"nomin":0,"unit":"EUR","rows":[
		{"day":"2024-01-29","sum":1000,"qsum":"5"},
		{"day":"2024-01-31T00:00:00.000","sum":0.10,"qsum":"1.005","x":null},
		{"day":"2024-01-30","sum":1.5e1,"qsum":"-2"},
		{"day":"2024-02-01","sum":99999,"qsum":"99"}]}`
	feb := `{"from":"y","sum":0,"qsum":"0","n":0,"none":0,"nomin":0,"unit":"USD","rows":[
		{"day":"2024-02-02","sum":-3,"qsum":"0.5"},
		{"day":"2024-02-03","sum":7,"qsum":"7"},
		{"day":"2024-02-01","sum":null,"qsum":"0"}]}`
	got, err := p.Assemble(k, [][]byte{[]byte(jan), []byte(feb)})
	if err != nil {
		t.Fatal(err)
	}
	var a map[string]json.RawMessage
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	// Jan: the 30th and 31st (the 29th is before the range; Feb 1 in
	// January's answer spilled from another month: not counted); Feb: the
	// 1st and 2nd (the 3rd is after the range).
	for field, want := range map[string]string{
		"from": `"2024-01-30"`, "unit": `"EUR"`,
		"sum":   "12.10",    // 15 + 0.10 + (null) - 3
		"qsum":  `"-0.495"`, // -2 + 1.005 + 0 + 0.5, at the largest scale, quoted as given
		"n":     "4",
		"none":  "0",
		"nomin": "null",
	} {
		if string(a[field]) != want {
			t.Errorf("%s = %s, want %s (answer %s)", field, a[field], want, got)
		}
	}
	var rows struct {
		Rows []struct {
			Day string `json:"day"`
		} `json:"rows"`
	}
	json.Unmarshal(got, &rows)
	var days []string
	for _, r := range rows.Rows {
		days = append(days, r.Day[:10])
	}
	if strings.Join(days, ",") != "2024-01-30,2024-01-31,2024-02-01,2024-02-02" {
		t.Errorf("rows of days %v, want Jan 30 to Feb 2 in order", days)
	}

	// min and max keep the value as written.
	p = &dashcache.Partition{Rows: ".", DayField: "day"}
	got, err = p.Assemble(dashcache.ReportKey{Customer: "a", From: day(t, "2024-02-02"), To: day(t, "2024-02-02")},
		[][]byte{[]byte(`[{"day":"2024-02-01"},{"day":"2024-02-02","x":1}]`)})
	if err != nil || string(got) != `[{"day":"2024-02-02","x":1}]` {
		t.Errorf("rows answer: %s, %v", got, err)
	}
	mm := &dashcache.Partition{Rows: "r", DayField: "d", Totals: map[string]dashcache.Total{"lo": "min", "hi": "max"}}
	got, err = mm.Assemble(dashcache.ReportKey{Customer: "a", From: day(t, "2024-02-01"), To: day(t, "2024-02-03")},
		[][]byte{[]byte(`{"lo":0,"hi":0,"r":[{"d":"2024-02-01","lo":2.50,"hi":"1e2"},{"d":"2024-02-02","lo":-1.0,"hi":"99.9"},{"d":"2024-02-03","lo":3,"hi":"100.1"}]}`)})
	if err != nil || string(got) != `{"lo":-1.0,"hi":"100.1","r":[{"d":"2024-02-01","lo":2.50,"hi":"1e2"},{"d":"2024-02-02","lo":-1.0,"hi":"99.9"},{"d":"2024-02-03","lo":3,"hi":"100.1"}]}` {
		t.Errorf("min and max: %s, %v", got, err)
	}
}

func TestPartitionCheck(t *testing.T) {
	for _, tc := range []struct {
		data, want string
	}{
		{`[1]`, "not a JSON object"},
		{`{"series":[]}`, `no field "days"`},
		{`{"days":0,"revenue":0,"orders":0,"from":"","to":"","series":{}}`, "not a JSON array"},
		{`{"days":0,"revenue":0,"orders":0,"from":"","to":"","series":[{"date":"2024-13-01"}]}`, "not a date"},
		{`{"days":0,"revenue":0,"orders":0,"from":"","to":"","series":[{"day":"2024-01-01"}]}`, `row 1 has no date in "date"`},
	} {
		err := dashcache.SimulatorPartition.Check([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%s) = %v, want one saying %q", tc.data, err, tc.want)
		}
	}
	bad := &dashcache.Partition{Rows: "r", DayField: "d", Totals: map[string]dashcache.Total{"t": "sum"}}
	if _, err := bad.Assemble(dashcache.ReportKey{Customer: "a", From: day(t, "2024-02-01"), To: day(t, "2024-02-01")},
		[][]byte{[]byte(`{"t":0,"r":[{"d":"2024-02-01","t":"many"}]}`)}); err == nil || !strings.Contains(err.Error(), "not a decimal number") {
		t.Errorf("a sum of a word: %v, want an error", err)
	}
}
