package provider

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// TestAppendTimestamp: a timestamptz printed in a zone other than the
// pinned UTC (a report may set its own) still comes out in UTC.
func TestAppendTimestamp(t *testing.T) {
	for in, want := range map[string]string{
		"2024-03-01 12:00:00+05:30":           `"2024-03-01T06:30:00Z"`,
		"1900-01-01 00:00:00.25+00:09:21":     `"1899-12-31T23:50:39.25Z"`,
		"2024-03-01 12:00:00-08":              `"2024-03-01T20:00:00Z"`,
		"2024-03-01 12:00:00.000001":          `"2024-03-01T12:00:00.000001Z"`,
		"0001-01-01 00:00:00+00":              `"0001-01-01T00:00:00Z"`,
		"2024-02-29 23:59:59.999999+00":       `"2024-02-29T23:59:59.999999Z"`,
		"9999-12-31 23:59:59.123456789+00:00": `"9999-12-31T23:59:59.123456789Z"`,
	} {
		got, err := appendTimestamp(nil, []byte(in))
		if err != nil || string(got) != want {
			t.Errorf("%s: %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"infinity", "-infinity", "2024-03-01 12:00:00+00 BC", "10000-01-01 00:00:00+00", ""} {
		if got, err := appendTimestamp(nil, []byte(in)); err == nil {
			t.Errorf("%q: %s, want an error", in, got)
		}
	}
}

// FuzzJSONString: valid UTF-8 comes out as a JSON string that reads back
// as itself; anything else is an error.
func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", `a"b\c`, "\x00\x1f\x7f", "naïve 日本 😀", "\u2028\u2029", "\xff", "a\xc3", "<&>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		out, err := appendJSONString([]byte("x"), s)
		if !utf8.Valid(s) {
			if err == nil {
				t.Fatalf("%q is not UTF-8, and became %s", s, out)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if out[0] != 'x' {
			t.Fatalf("%q: the start of dst was changed: %s", s, out)
		}
		var back string
		if err := json.Unmarshal(out[1:], &back); err != nil || back != string(s) {
			t.Fatalf("%q became %s, which reads back as %q, %v", s, out[1:], back, err)
		}
	})
}

// FuzzJSONNumber: isJSONNumber agrees with encoding/json on what is a
// number.
func FuzzJSONNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "01", "1.", ".5", "1.5e+10", "1e", "-", "NaN", "Infinity", "12345678901234567890.1234567891", "1E-7", " 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		var n json.Number
		isNumber := json.Valid(s) && json.Unmarshal(s, &n) == nil && string(n) == string(s)
		if got := isJSONNumber(s); got != isNumber {
			t.Fatalf("isJSONNumber(%q) = %v, encoding/json says %v", s, got, isNumber)
		}
	})
}
