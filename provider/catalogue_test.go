package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

const goodCatalogue = `
backends:
  warehouse: {type: postgres, dsn_env: WAREHOUSE_DSN, rate: 20}
  legacy: {type: http, url: "http://127.0.0.1:9000", token_env: LEGACY_TOKEN}
reports:
  revenue:
    backend: warehouse
    query: |
      SELECT day, sum(amount) AS revenue, count(*) AS orders
      FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to
      GROUP BY day ORDER BY day
  legacy-totals:
    backend: legacy
    fresh: 1m
    closed_fresh: 24h
`

func TestParseCatalogue(t *testing.T) {
	c, err := ParseCatalogue([]byte(goodCatalogue))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Backends["warehouse"]; b.Type != TypePostgres || b.DSNEnv != "WAREHOUSE_DSN" || b.Rate != 20 {
		t.Errorf("warehouse: %+v", b)
	}
	if r := c.Reports["revenue"]; r.Backend != "warehouse" || !strings.Contains(r.Query, "@customer") {
		t.Errorf("revenue: %+v", r)
	}
	if f := c.Freshness("legacy-totals"); f != (dashcache.Freshness{Open: time.Minute, Closed: 24 * time.Hour}) {
		t.Errorf("legacy-totals' freshness: %+v", f)
	}
	if f := c.Freshness("revenue"); f != (dashcache.Freshness{}) {
		t.Errorf("revenue's freshness: %+v, want the defaults", f)
	}
	if f := (*Catalogue)(nil).Freshness("revenue"); f != (dashcache.Freshness{}) {
		t.Errorf("no catalogue's freshness: %+v", f)
	}

	// Every problem is reported, each naming its report or back end and
	// field.
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"empty", ``, []string{"empty"}},
		{"unknown field", "reports:\n  r:\n    backend: b\n    sql: x\n", []string{"field sql is not known; a report accepts backend, query, fresh, closed_fresh, card, customer_parameter and range_parameter"}},
		{"no reports", "backends:\n  b: {type: http, url: x}\n", []string{"reports: at least one"}},
		{"several at once", `
backends:
  Ware: {type: postgres}
  h: {type: mysql2}
  n: {type: http, rate: -1}
  c: {type: cube, url: "http://cube"}
  m: {type: metabase, url: "http://mb", api_key_env: MB_KEY}
reports:
  no-customer: {backend: Ware, query: "SELECT 1 WHERE day = @from"}
  comment-only: {backend: Ware, query: "SELECT 1 -- @customer"}
  string-only: {backend: Ware, query: "SELECT '@customer'"}
  odd-param: {backend: Ware, query: "SELECT 1 WHERE c = @customer AND x = @tenant"}
  lost: {backend: nowhere}
  http-query: {backend: n, query: "SELECT 1"}
  Bad.Name: {backend: n}
  cube-no-customer: {backend: c, query: '{"measures":["Orders.count"]}'}
  cube-not-json: {backend: c, query: 'measures: x'}
  mb-no-card: {backend: m}
  card-elsewhere: {backend: n, card: 3}
  forever: {backend: n, fresh: 720h}
`, []string{
			"back end Ware: the name", "back end Ware: dsn_env is required",
			`back end h: type "mysql2": use one of postgres, mysql, cube, metabase, http`,
			"back end n: rate, burst and max_rows must not be negative",
			"report no-customer: query: does not use @customer",
			"report comment-only: query: does not use @customer",
			"report string-only: query: does not use @customer",
			"report odd-param: query: has a named parameter other than @customer, @from and @to",
			`report lost: backend "nowhere" is not one of the back ends (Ware, c, h, m, n)`,
			"report http-query: query: an http back end takes no query",
			"report Bad.Name: the name",
			"back end c: url and secret_env are required",
			`report cube-no-customer: query: does not use "@customer"`,
			"report cube-not-json: query: is not a JSON object",
			"report mb-no-card: card is required",
			"report card-elsewhere: card, customer_parameter and range_parameter are a Metabase report's",
			"report forever: fresh and closed_fresh are Go durations up to 168h0m0s",
		}},
	} {
		_, err := ParseCatalogue([]byte(tc.file))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, w)
			}
		}
	}
}

// TestCustomerAsPgxBindsIt: a PostgreSQL report's @customer counts only
// where pgx binds it: not in a comment nested in a comment (PostgreSQL
// nests them), nor in a string; a backslash ends no standard string.
func TestCustomerAsPgxBindsIt(t *testing.T) {
	for q, ok := range map[string]bool{
		"SELECT 1 FROM t WHERE day BETWEEN @from AND @to /* AND r = 'eu' /* old */ AND customer = @customer */": false,
		"SELECT 1 FROM t WHERE c = @customer /* a /* nested */ comment */":                                      true,
		`SELECT 1 FROM t WHERE p = 'C:\' AND c = @customer`:                                                     true,
		"SELECT 1 FROM t WHERE c = '@customer'":                                                                 false,
	} {
		err := checkSQL(q, TypePostgres)
		if (err == nil) != ok {
			t.Errorf("checkSQL(%q) = %v, want ok=%v", q, err, ok)
		}
	}
}
