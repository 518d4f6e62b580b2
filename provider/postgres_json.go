package provider

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A report's rows become JSON from PostgreSQL's text output of each value
// (Query asks for text results), so that a number keeps every digit the
// server printed and nothing is decoded into a Go type and printed again.
// The session settings that shape that text are pinned (pinnedSettings).

// jsonColumn turns one column's values into JSON.
type jsonColumn struct {
	key []byte // "name": (JSON-escaped)
	// put appends the JSON of a value's text; never called for NULL.
	put func(dst, text []byte) ([]byte, error)
	// name and typ name the column and its type in errors.
	name, typ string
}

// jsonColumns returns how to write each column of a result as JSON; its
// error is keyColumns'.
func jsonColumns(fields []pgconn.FieldDescription, types *pgtype.Map) ([]jsonColumn, error) {
	cols := make([]jsonColumn, len(fields))
	for i, f := range fields {
		typ := fmt.Sprintf("type OID %d", f.DataTypeOID)
		if t, ok := types.TypeForOID(f.DataTypeOID); ok {
			typ = t.Name
			if elem, ok := strings.CutPrefix(typ, "_"); ok { // pgx's name of an array type
				typ = elem + "[]"
			}
		}
		cols[i] = jsonColumn{name: f.Name, typ: typ, put: jsonWriters[f.DataTypeOID]}
	}
	return cols, keyColumns(cols, "%s::text")
}

// keyColumns sets the key of each column, given its name, type and writer.
// Its error names every column whose type has no writer, with how to cast
// it in the query (cast, a format of the column's name), and every column
// name used twice (a JSON object has each key once).
func keyColumns(cols []jsonColumn, cast string) error {
	seen := make(map[string]bool, len(cols))
	var errs []error
	for i, c := range cols {
		if c.put == nil {
			errs = append(errs, fmt.Errorf("column %q has type %s, which has no JSON form here: cast it in the query (%s, say)", c.name, c.typ, fmt.Sprintf(cast, c.name)))
		}
		if seen[c.name] {
			errs = append(errs, fmt.Errorf("column name %q appears more than once: give each column a name of its own (AS ...)", c.name))
		}
		seen[c.name] = true
		key, err := appendJSONString(nil, []byte(c.name))
		if err != nil {
			errs = append(errs, fmt.Errorf("column name %q: %w", c.name, err))
		}
		cols[i].key = append(key, ':')
	}
	return errors.Join(errs...)
}

// appendRow appends one row, values as text (nil for NULL), as a JSON object.
func appendRow(dst []byte, cols []jsonColumn, values [][]byte) ([]byte, error) {
	dst = append(dst, '{')
	for i, v := range values {
		if i > 0 {
			dst = append(dst, ',')
		}
		c := cols[i]
		dst = append(dst, c.key...)
		if v == nil {
			dst = append(dst, "null"...)
			continue
		}
		var err error
		if dst, err = c.put(dst, v); err != nil {
			return nil, fmt.Errorf("column %q (%s): %w", c.name, c.typ, err)
		}
	}
	return append(dst, '}'), nil
}

// jsonWriters are the writers of the types Query accepts, by type OID.
var jsonWriters = map[uint32]func(dst, text []byte) ([]byte, error){
	pgtype.Int2OID:        appendExactNumber,
	pgtype.Int4OID:        appendExactNumber,
	pgtype.Int8OID:        appendExactNumber,
	pgtype.OIDOID:         appendExactNumber,
	pgtype.NumericOID:     appendExactNumber,
	pgtype.Float4OID:      appendFloat,
	pgtype.Float8OID:      appendFloat,
	pgtype.BoolOID:        appendBool,
	pgtype.DateOID:        appendDate,
	pgtype.TimestamptzOID: appendTimestamp,
	pgtype.TimestampOID:   appendTimestamp,
	pgtype.TextOID:        appendJSONString,
	pgtype.VarcharOID:     appendJSONString,
	pgtype.BPCharOID:      appendJSONString,
	pgtype.NameOID:        appendJSONString,
	pgtype.UUIDOID:        appendJSONString,
	pgtype.JSONOID:        appendJSON,
	pgtype.JSONBOID:       appendJSON,
}

// appendExactNumber appends an integer or numeric as the server printed
// it; numeric's NaN and ±Infinity have no JSON number.
func appendExactNumber(dst, text []byte) ([]byte, error) {
	if !isJSONNumber(text) {
		return nil, fmt.Errorf("%s is not a number JSON can hold: filter it out or cast the column (::text)", text)
	}
	return append(dst, text...), nil
}

// appendFloat appends a float as the server printed it (the shortest text
// that reads back as the same float), and NaN and ±Infinity as null.
func appendFloat(dst, text []byte) ([]byte, error) {
	switch string(text) {
	case "NaN", "Infinity", "-Infinity":
		return append(dst, "null"...), nil
	}
	return appendExactNumber(dst, text)
}

func appendBool(dst, text []byte) ([]byte, error) {
	switch string(text) {
	case "t":
		return append(dst, "true"...), nil
	case "f":
		return append(dst, "false"...), nil
	}
	return nil, fmt.Errorf("%q is not a bool", text)
}

// appendDate appends a date as "YYYY-MM-DD" (DateStyle ISO); infinity, a
// date BC or past year 9999 have no such form.
func appendDate(dst, text []byte) ([]byte, error) {
	if _, err := time.Parse(time.DateOnly, string(text)); err != nil {
		return nil, fmt.Errorf("%s is not a YYYY-MM-DD date", text)
	}
	dst = append(dst, '"')
	dst = append(dst, text...)
	return append(dst, '"'), nil
}

// timestampLayouts read a timestamp as PostgreSQL prints it with DateStyle
// ISO: without a zone (timestamp), or with the session's offset
// (timestamptz: +00 under the pinned TimeZone UTC, but a report may change
// the zone for its own transaction). The fraction is optional.
var timestampLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999-07:00",
	"2006-01-02 15:04:05.999999999-07:00:00",
}

// appendTimestamp appends a timestamp as RFC 3339 in UTC with its fraction
// of a second, if any; one without a zone is read as UTC. Infinity, a year
// BC or past 9999 have no RFC 3339 form.
func appendTimestamp(dst, text []byte) ([]byte, error) {
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, string(text)); err == nil {
			dst = append(dst, '"')
			dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
			return append(dst, '"'), nil
		}
	}
	return nil, fmt.Errorf("%s has no RFC 3339 form", text)
}

// appendJSON appends a json or jsonb value: the server holds only valid
// JSON in them.
func appendJSON(dst, text []byte) ([]byte, error) {
	return append(dst, text...), nil
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s, which must be valid UTF-8, as a JSON string:
// quote, backslash and control characters escaped, and U+2028 and U+2029
// too (as encoding/json does), HTML characters left as they are.
func appendJSONString(dst, s []byte) ([]byte, error) {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			return nil, fmt.Errorf("the text is not valid UTF-8 (byte %#x at %d)", b, i)
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			start = i + size
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"'), nil
}

// isJSONNumber reports whether s is a number by JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s []byte) bool {
	i := 0
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
