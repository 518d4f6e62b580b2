package provider

import "strings"

// namedParam is a named parameter (@name) of a SQL query, at query[start:end].
type namedParam struct {
	name       string
	start, end int
}

// namedParams returns the named parameters of a SQL query: @ followed by a
// letter or _, then letters, digits or _, outside string literals ('...',
// E'...', $tag$...$tag$), quoted identifiers ("..." and `...`) and comments
// (-- and /* */), as pgx's NamedArgs reads them.
func namedParams(query string) []namedParam {
	var out []namedParam
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			i = skipQuoted(query, i, c)
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			if j := strings.IndexByte(query[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(query)
			}
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			if j := strings.Index(query[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(query)
			}
		case c == '$':
			i = skipDollarQuoted(query, i)
		case c == '@' && i+1 < len(query) && isNameStart(query[i+1]):
			j := i + 1
			for j < len(query) && isNamePart(query[j]) {
				j++
			}
			out = append(out, namedParam{name: query[i+1 : j], start: i, end: j})
			i = j
		default:
			i++
		}
	}
	return out
}

// skipQuoted returns the index after the quoted text that starts at i with
// quote q; a doubled quote, or a backslash in a '...' literal, escapes.
func skipQuoted(query string, i int, q byte) int {
	for j := i + 1; j < len(query); j++ {
		switch {
		case query[j] == '\\' && q == '\'':
			j++
		case query[j] == q && j+1 < len(query) && query[j+1] == q:
			j++
		case query[j] == q:
			return j + 1
		}
	}
	return len(query)
}

// skipDollarQuoted returns the index after a $tag$...$tag$ string that
// starts at i, or i+1 when $ starts none ($1, a lone $).
func skipDollarQuoted(query string, i int) int {
	j := i + 1
	for j < len(query) && isNamePart(query[j]) && !(j == i+1 && query[j] >= '0' && query[j] <= '9') {
		j++
	}
	if j >= len(query) || query[j] != '$' {
		return i + 1
	}
	tag := query[i : j+1]
	if k := strings.Index(query[j+1:], tag); k >= 0 {
		return j + 1 + k + len(tag)
	}
	return len(query)
}

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isNamePart(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }
