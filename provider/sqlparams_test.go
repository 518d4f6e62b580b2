package provider

import (
	"reflect"
	"strings"
	"testing"
)

// TestMySQLParams: the user variables of a MySQL query are found where
// MySQL's lexer finds code, by each of its rules; an executable comment or
// a ? of the query's own is refused.
func TestMySQLParams(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		rule, query string
		want        string // the names found, or the error's start
	}{
		{"plain", "SELECT @customer, @from, @to", "customer from to"},
		{"# comment", "SELECT 1 # @x\n, @customer", "customer"},
		{"# comment ends at \\n only", "SELECT 1 # @x\r @y\n, @customer", "customer"},
		{"-- and a space", "SELECT 1 -- @x\n, @customer", "customer"},
		{"-- and a tab", "SELECT 1 --\t@x\n, @customer", "customer"},
		{"-- and a control character", "SELECT 1 --\x01@x\n, @customer", "customer"},
		{"-- at the end", "SELECT @customer --", "customer"},
		{"--x is minus minus", "SELECT 1--@customer", "customer"},
		{"--- and a space", "SELECT 1 --- @x\n, @customer", "customer"},
		{"/* */", "SELECT 1 /* @x */, @customer", "customer"},
		{"/* */ does not nest", "SELECT 1 /* /* @x */, @customer", "customer"},
		{"/*+ hint */", "SELECT /*+ @x */ @customer", "customer"},
		{"/*m! is a comment", "SELECT 1 /*m! @x */, @customer", "customer"},
		{"unterminated comment", "SELECT @customer /* @x", "customer"},
		{"'' in a string", "SELECT 'it''s @x', @customer", "customer"},
		{"\\' in a string", `SELECT 'a\'@x', @customer`, "customer"},
		{"\\\\ ends no string", `SELECT 'a\\', @customer, '\\'`, "customer"},
		{`"..." is a string`, `SELECT "a\"@x""@y", @customer`, "customer"},
		{"`` in a name", "SELECT 1 AS `a``@x`, @customer", "customer"},
		{"\\ in a name is a backslash", "SELECT 1 AS `a\\`, @customer, `@x`", "customer"},
		{"unterminated string", "SELECT @customer, '@x", "customer"},
		{"no dollar quoting", "SELECT $$ @customer $$", "customer"},
		{"@@ is a system variable", "SELECT @@customer, @@session.sql_mode, @customer", "customer"},
		{"a name as MySQL reads it", "SELECT @customer.x, @from$, @9, @é, a@to", "customer.x from$ 9 é to"},
		{"@ and no name", "SELECT @ , 1", ""},
		{"@'' is a quoted user variable", "SELECT @customer, @'customer'", "has a quoted user variable @'customer', which MySQL reads"},
		{`@"" is a quoted user variable`, `SELECT @customer, @"to"`, `has a quoted user variable @"to"`},
		{"@`` is a quoted user variable", "SELECT @customer, @`from`", "has a quoted user variable @`from`"},
		{"@' unterminated", "SELECT @customer, @'" + strings.Repeat("x", 60), "has a quoted user variable @'" + strings.Repeat("x", 38) + "..."},
		{"@'' in a string", "SELECT '@''x''', @customer", "customer"},
		{"? in literals and comments", "SELECT '?', \"?\", `?` # ?\n, @customer -- ?\n/* ? */", "customer"},
		{"executable comment", "SELECT 1 /*! , @customer */", "has an executable comment"},
		{"versioned executable comment", "SELECT 1 /*!50110 , @customer */", "has an executable comment"},
		{"MariaDB's executable comment", "SELECT 1 /*M!100100 , @customer */", "has an executable comment"},
		{"/*! in a string", "SELECT '/*! @x */', @customer", "customer"},
		{"? of its own", "SELECT @customer, ?", "has a ? placeholder"},
		{"?: --x is no comment", "SELECT @customer --x ?", "has a ? placeholder"},
	} {
		params, err := mysqlParams(c.query)
		var got []string
		for _, p := range params {
			if c.query[p.start:p.end] != "@"+p.name {
				t.Errorf("%s: %+v does not span @%s", c.rule, p, p.name)
			}
			got = append(got, p.name)
		}
		if err != nil {
			got = []string{err.Error()}
		}
		if !strings.HasPrefix(strings.Join(got, " "), c.want) || c.want == "" && len(got) > 0 {
			t.Errorf("%s: mysqlParams(%q) = %q, %v; want %q", c.rule, c.query, got, err, c.want)
		}
	}
}

// TestCheckSQLMySQL: a MySQL report whose @customer MySQL would not bind
// (in a comment or a literal, by MySQL's rules), or that MySQL would read
// otherwise than dashcache, is refused at load, saying why.
func TestCheckSQLMySQL(t *testing.T) {
	t.Parallel()
	for query, want := range map[string]string{
		"SELECT day FROM sales WHERE customer = @customer":                       "",
		"SELECT day FROM sales WHERE 1--@customer = 0":                           "",
		"SELECT day FROM sales # WHERE customer = @customer":                     "does not use @customer",
		"SELECT day FROM sales WHERE note = 'x\\' AND customer = @customer -- '": "does not use @customer",
		"SELECT day FROM sales WHERE note = \"customer = @customer\"":            "does not use @customer",
		"SELECT day FROM sales /* a /* b */ WHERE customer = @customer":          "",
		"SELECT day FROM sales /* WHERE customer = @customer */":                 "does not use @customer",
		"SELECT day FROM sales WHERE customer = @@customer":                      "does not use @customer",
		"SELECT day FROM sales WHERE customer = @tenant OR c = @customer":        "@tenant is not a parameter",
		"SELECT day FROM sales WHERE customer = @customer.x":                     "@customer.x is not a parameter",
		"SELECT day FROM sales WHERE customer = @customer AND day >= @'from'":    "has a quoted user variable @'from'",
		"SELECT day FROM sales WHERE customer = @customer /*!50110 OR 1 */":      "has an executable comment (/*! ... */ or /*M! ... */), whose text MySQL runs as SQL: write that SQL",
		"SELECT day FROM sales WHERE day = ? AND customer = @customer":           "has a ? placeholder of its own",
	} {
		err := checkSQL(query, TypeMySQL)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("checkSQL(%q) = %v, want %q", query, err, want)
		}
	}
}

// TestNewMySQLQuery: the parameters become ? placeholders, and their
// values follow in placeholder order; the rest of the text is untouched.
func TestNewMySQLQuery(t *testing.T) {
	t.Parallel()
	q, err := newMySQLQuery("SELECT @to, '@to' # @from\n, @customer, 1--@from")
	if err != nil {
		t.Fatal(err)
	}
	if want := "SELECT ?, '@to' # @from\n, ?, 1--?"; q.sql != want {
		t.Errorf("sql %q, want %q", q.sql, want)
	}
	if got, want := q.args(january("r")), []any{"2024-01-31", "acme", "2024-01-01"}; !reflect.DeepEqual(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
}
