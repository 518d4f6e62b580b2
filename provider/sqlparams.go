package provider

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dashcache/dashcache"
)

// A MySQL report's @customer, @from and @to become ? placeholders, which
// the server binds by position: so they must be found where MySQL's own
// lexer finds code, never in a comment or a literal. PostgreSQL's reports
// are pgx's to rewrite (pgxBinds), by PostgreSQL's rules.

// namedParam is a user variable (@name) of a MySQL query, at query[start:end].
type namedParam struct {
	name       string
	start, end int
}

// mysqlParams returns the user variables of a MySQL query: @ and a name of
// letters, digits, _, $, . or non-ASCII bytes (as MySQL reads @customer.x
// or @customer$ as one name). It reads the query as MySQL's lexer does
// under the sql_mode every connection pins (mysqlSQLMode):
//   - '...' and "..." are strings, where a backslash escapes the next byte
//     and a doubled quote is one; `...` is a name, where a doubled backtick
//     is one;
//   - # starts a comment to the end of the line, and so does -- when a
//     space or a control character follows it (1--@to is 1 minus minus @to);
//   - /* starts a comment that ends at the first */ (they do not nest), an
//     optimizer hint /*+ ... */ too;
//   - @@name is a system variable, not a user variable;
//   - @'name', @"name" and @`name` are user variables too, quoted;
//   - there is no dollar quoting.
//
// It refuses what would make the server bind otherwise than it reads: an
// executable comment (/*! ... */, /*!50110 ... */, MariaDB's /*M! ... */),
// whose text the server runs as SQL, and a ? of the query's own, which
// would take a parameter's place; and a quoted user variable, which is
// never a parameter (the server would read @'customer' as an unset
// variable, NULL, and the report would silently match nothing), as an
// @name other than the parameters is refused.
func mysqlParams(query string) ([]namedParam, error) {
	var out []namedParam
	for i := 0; i < len(query); {
		rest := query[i:]
		switch {
		case rest[0] == '\'' || rest[0] == '"' || rest[0] == '`':
			i = skipQuoted(query, i)
		case rest[0] == '#' || isDashComment(rest):
			if j := strings.IndexByte(rest, '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(query)
			}
		case strings.HasPrefix(rest, "/*!") || strings.HasPrefix(rest, "/*M!"):
			return nil, errors.New("has an executable comment (/*! ... */ or /*M! ... */), whose text MySQL runs as SQL: " +
				"write that SQL without the comment's markers, or remove the comment")
		case strings.HasPrefix(rest, "/*"):
			if j := strings.Index(rest[2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(query)
			}
		case rest[0] == '?':
			return nil, errors.New("has a ? placeholder of its own: a report's values are @customer, @from and @to")
		case strings.HasPrefix(rest, "@@"):
			i = nameEnd(query, i+2)
		case strings.HasPrefix(rest, "@'") || strings.HasPrefix(rest, "@\"") || strings.HasPrefix(rest, "@`"):
			v := query[i:skipQuoted(query, i+1)]
			if len(v) > 40 {
				v = v[:40] + "..."
			}
			return nil, fmt.Errorf("has a quoted user variable %s, which MySQL reads as a variable of that name, not a parameter: "+
				"use @customer, @from and @to", v)
		case rest[0] == '@':
			j := nameEnd(query, i+1)
			if j > i+1 {
				out = append(out, namedParam{name: query[i+1 : j], start: i, end: j})
			}
			i = j
		default:
			i++
		}
	}
	return out, nil
}

// skipQuoted returns the index after the string or quoted name that starts
// at i: a doubled quote is a quote, and in a string ('...' or "...") a
// backslash escapes the next byte.
func skipQuoted(query string, i int) int {
	q := query[i]
	for j := i + 1; j < len(query); j++ {
		switch {
		case query[j] == '\\' && q != '`':
			j++
		case query[j] == q && j+1 < len(query) && query[j+1] == q:
			j++
		case query[j] == q:
			return j + 1
		}
	}
	return len(query)
}

// isDashComment reports whether s starts with a -- comment: MySQL wants a
// space or a control character after the dashes (or the query's end).
func isDashComment(s string) bool {
	return strings.HasPrefix(s, "--") && (len(s) == 2 || s[2] <= ' ' || s[2] == 0x7f)
}

// nameEnd returns the index after the name of a variable that starts at i.
func nameEnd(query string, i int) int {
	for i < len(query) {
		c := query[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '$' || c == '.' || c >= 0x80) {
			break
		}
		i++
	}
	return i
}

// mysqlBinds returns the parameters of sqlParams that a MySQL query binds;
// any other user variable is an error.
func mysqlBinds(query string) (map[string]bool, error) {
	params, err := mysqlParams(query)
	if err != nil {
		return nil, err
	}
	bound := map[string]bool{}
	for _, p := range params {
		if !slices.Contains(sqlParams, p.name) {
			return nil, fmt.Errorf("@%s is not a parameter; use @customer, @from and @to", p.name)
		}
		bound[p.name] = true
	}
	return bound, nil
}

// mysqlQuery is a MySQL report's SQL with its parameters rewritten to ?
// placeholders, and their names in placeholder order.
type mysqlQuery struct {
	sql    string
	params []string
}

// newMySQLQuery rewrites the parameters of query, as mysqlParams finds
// them, to ? placeholders.
func newMySQLQuery(query string) (mysqlQuery, error) {
	params, err := mysqlParams(query)
	if err != nil {
		return mysqlQuery{}, err
	}
	var b strings.Builder
	var q mysqlQuery
	last := 0
	for _, p := range params {
		b.WriteString(query[last:p.start])
		b.WriteByte('?')
		q.params = append(q.params, p.name)
		last = p.end
	}
	b.WriteString(query[last:])
	q.sql = b.String()
	return q, nil
}

// args returns the values of q's placeholders for k, the dates as
// 'YYYY-MM-DD' text.
func (q mysqlQuery) args(k dashcache.ReportKey) []any {
	values := map[string]any{"customer": k.Customer, "from": k.From.String(), "to": k.To.String()}
	args := make([]any, len(q.params))
	for i, name := range q.params {
		args[i] = values[name]
	}
	return args
}
