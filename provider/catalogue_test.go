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
    partition: {by: month, rows: ".", day_field: day}
  legacy-totals:
    backend: legacy
    fresh: 1m
    closed_fresh: 24h
    partition:
      by: month
      rows: series
      day_field: date
      from_field: from
      to_field: to
      totals: {revenue: sum, orders: sum, days: count}
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
	parts := c.Partitions()
	if p := parts["revenue"]; p == nil || p.Rows != "." || p.DayField != "day" || len(p.Totals) != 0 {
		t.Errorf("revenue's partition: %+v", p)
	}
	if p := parts["legacy-totals"]; p == nil || p.Rows != "series" || p.FromField != "from" || p.Totals["days"] != dashcache.TotalCount || p.Totals["revenue"] != dashcache.TotalSum {
		t.Errorf("legacy-totals' partition: %+v", p)
	}
	if len((*Catalogue)(nil).Partitions()) != 0 {
		t.Error("no catalogue has partitions")
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
		{"unknown field", "reports:\n  r:\n    backend: b\n    sql: x\n", []string{"field sql is not known; a report accepts backend, query, fresh, closed_fresh, card, customer_parameter, range_parameter and partition"}},
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
  twitchy: {backend: n, closed_fresh: 1ms}
  weekly: {backend: n, partition: {by: week, rows: series, day_field: date}}
  ratio: {backend: n, partition: {by: month, rows: series, day_field: date, totals: {conversion: avg}}}
  sql-rows: {backend: Ware, query: "SELECT 1 WHERE c = @customer", partition: {by: month, rows: data, day_field: day}}
`, []string{
			"back end Ware: the name", "back end Ware: dsn_env is required",
			`back end h: type "mysql2": use one of postgres, mysql, cube, metabase, http`,
			"back end n: rate, burst and max_rows must not be negative",
			"report no-customer: query: does not use @customer",
			"report comment-only: query: does not use @customer",
			"report string-only: query: does not use @customer",
			"report odd-param: query: has a named parameter other than @customer, @from and @to",
			`report lost: backend "nowhere" is not one of the back ends (Ware, c, h, m, n)`,
			"report http-query: query does not apply to a report of back end n (http), which takes backend, fresh, closed_fresh and partition",
			`report "Bad.Name": the name: a report name may contain only a-z 0-9 _ -`,
			"back end c: secret_env is required",
			"back end n: url is required: an absolute http:// or https:// URL",
			"back end h: no report uses it: remove it, or add a report",
			`report cube-no-customer: query: is not limited to the customer`,
			"report cube-not-json: query: is not a JSON object",
			"report mb-no-card: card is required",
			"report card-elsewhere: card does not apply to a report of back end n (http)",
			"report forever: fresh and closed_fresh are Go durations from 10s to 168h0m0s",
			"report twitchy: fresh and closed_fresh are Go durations from 10s to 168h0m0s",
			`report weekly: partition: by is "week"; the one partitioning is "month"`,
			`report ratio: partition: totals: conversion is "avg"; a total is one of sum, min, max, count (distinct counts and ratios do not add up by day`,
			`report sql-rows: partition: rows must be "." for a back end of type postgres, whose answer is the rows`,
		}},
	} {
		_, err := ParseCatalogue([]byte(tc.file))
		wantErrors(t, tc.name, err, tc.want)
	}
}

// TestParseCatalogueStrict: a back end's url is checked as its constructor
// checks it, and holds no user or password; a field that does not apply to
// the back end's type is refused; a secret's variable looks like one; every
// back end answers a report. No error shows a secret.
func TestParseCatalogueStrict(t *testing.T) {
	const secret = "pa55-W0rd"
	for _, tc := range []struct {
		name, backends, reports string
		want                    []string
	}{
		{"urls", `
  rel: {type: http, url: "bi.internal:8080"}
  ftp: {type: cube, url: "ftp://cube.internal", secret_env: CUBE_SECRET}
  query: {type: metabase, url: "https://mb.internal/?token=` + secret + `", api_key_env: MB_KEY}
  user: {type: http, url: "https://bi:` + secret + `@bi.internal"}
  user-and-ftp: {type: http, url: "ftp://bi:` + secret + `@bi.internal"}
  bare-user: {type: http, url: "https://` + secret + `@bi.internal"}
  garbled: {type: http, url: "http://u:` + secret + `@bi internal/%zz"}`, `
  a: {backend: rel}
  b: {backend: ftp, query: '{"filters": [{"member": "O.c", "operator": "equals", "values": ["@customer"]}]}'}
  c: {backend: query, card: 1}
  d: {backend: user}
  e: {backend: user-and-ftp}
  f: {backend: bare-user}
  g: {backend: garbled}`, []string{
			`back end rel: url "bi.internal:8080" must be an absolute http:// or https:// URL`,
			`back end ftp: url "ftp://cube.internal" must be an absolute http:// or https:// URL`,
			"back end query: url must not have a query or fragment",
			"back end user: url must not carry a user or password (not shown here): secrets are never in the file; the credential goes in the environment variable that token_env names",
			"back end user-and-ftp: url must not carry a user or password",
			`back end user-and-ftp: url "ftp://bi.internal" must be an absolute http:// or https:// URL`,
			"back end bare-user: url must not carry a user or password",
			"back end garbled: url is not a valid URL",
		}},
		{"fields that do not apply", `
  pg: {type: postgres, dsn_env: PG_DSN, url: "https://pg.internal", token_env: PG_TOKEN}
  my: {type: mysql, dsn_env: MY_DSN, api_key_env: MY_KEY, secret_env: MY_SECRET}
  cube: {type: cube, url: "https://cube.internal", secret_env: CUBE_SECRET, token_env: CUBE_TOKEN, max_rows: 10}
  mb: {type: metabase, url: "https://mb.internal", api_key_env: MB_KEY, dsn_env: MB_DSN}
  legacy: {type: http, url: "https://bi.internal", secret_env: BI_SECRET, max_rows: 5}`, `
  sql: {backend: pg, query: "SELECT 1 WHERE c = @customer", card: 3}
  card: {backend: mb, card: 4, query: "SELECT 1"}
  cube: {backend: cube, customer_parameter: who, query: '{"filters": [{"member": "O.c", "operator": "equals", "values": ["@customer"]}]}'}
  my: {backend: my, query: "SELECT 1 WHERE c = @customer", range_parameter: period}
  totals: {backend: legacy, query: "SELECT 1"}`, []string{
			"back end pg: url does not apply to a back end of type postgres, which takes type, dsn_env, max_rows, rate and burst",
			"back end pg: token_env does not apply to a back end of type postgres",
			"back end my: api_key_env does not apply to a back end of type mysql",
			"back end my: secret_env does not apply to a back end of type mysql",
			"back end cube: token_env does not apply to a back end of type cube, which takes type, url, secret_env, rate and burst",
			"back end cube: max_rows does not apply to a back end of type cube",
			"back end mb: dsn_env does not apply to a back end of type metabase, which takes type, url, api_key_env, rate and burst",
			"back end legacy: secret_env does not apply to a back end of type http, which takes type, url, token_env, rate and burst",
			"back end legacy: max_rows does not apply to a back end of type http",
			"report sql: card does not apply to a report of back end pg (postgres), which takes backend, query, fresh, closed_fresh and partition",
			"report card: query does not apply to a report of back end mb (metabase), which takes backend, card, customer_parameter, range_parameter, fresh, closed_fresh and partition",
			"report cube: customer_parameter does not apply to a report of back end cube (cube)",
			"report my: range_parameter does not apply to a report of back end my (mysql)",
			"report totals: query does not apply to a report of back end legacy (http), which takes backend, fresh, closed_fresh and partition",
		}},
		{"variable names", `
  pg: {type: postgres, dsn_env: "postgres://dashcache:` + secret + `@db/analytics"}
  my: {type: mysql, dsn_env: shop_dsn}
  cube: {type: cube, url: "https://cube.internal", secret_env: "` + secret + `"}
  mb: {type: metabase, url: "https://mb.internal", api_key_env: "1MB_KEY"}
  legacy: {type: http, url: "https://bi.internal", token_env: "BI TOKEN"}`, `
  a: {backend: pg, query: "SELECT 1 WHERE c = @customer"}
  b: {backend: my, query: "SELECT 1 WHERE c = @customer"}
  c: {backend: cube, query: '{"filters": [{"member": "O.c", "operator": "equals", "values": ["@customer"]}]}'}
  d: {backend: mb, card: 1}
  e: {backend: legacy}`, []string{
			"back end pg: dsn_env must name an environment variable ([A-Z_][A-Z0-9_]*), the one that holds the secret, never hold the secret itself",
			"back end my: dsn_env must name an environment variable",
			"back end cube: secret_env must name an environment variable",
			"back end mb: api_key_env must name an environment variable",
			"back end legacy: token_env must name an environment variable",
		}},
		{"unused back ends", `
  pg: {type: postgres, dsn_env: PG_DSN}
  spare: {type: http, url: "https://bi.internal"}
  old: {type: metabase, url: "https://mb.internal", api_key_env: MB_KEY}`, `
  a: {backend: pg, query: "SELECT 1 WHERE c = @customer"}`, []string{
			"back end old: no report uses it: remove it, or add a report",
			"back end spare: no report uses it: remove it, or add a report",
		}},
	} {
		_, err := ParseCatalogue([]byte("backends:" + tc.backends + "\nreports:" + tc.reports + "\n"))
		if !wantErrors(t, tc.name, err, tc.want) {
			continue
		}
		if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) {
			t.Errorf("%s: %d errors, want %d: %v", tc.name, n, len(tc.want), err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q shows the secret", tc.name, err)
		}
	}
}

// wantErrors checks that err, of the case name, says each of want, and
// returns whether there was an error.
func wantErrors(t *testing.T, name string, err error, want []string) bool {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted", name)
		return false
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: error %q does not say %q", name, err, w)
		}
	}
	return true
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
