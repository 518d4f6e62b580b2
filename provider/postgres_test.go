package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/sqltest"
	"github.com/dashcache/dashcache/internal/wait"
)

// The integration tests of Postgres run on the real PostgreSQL of
// DASHCACHE_TEST_POSTGRES_URL, each in a database of its own
// (internal/sqltest).

const salesSchema = `
CREATE TABLE sales (customer text NOT NULL, day date NOT NULL, amount numeric(12,2) NOT NULL);
INSERT INTO sales VALUES
  ('acme',   '2024-01-01', 10.50),
  ('acme',   '2024-01-02', 20.00),
  ('acme',   '2024-02-01',  5.25),
  ('globex', '2024-01-01', 99.99),
  ('globex', '2024-01-02',  1.00);
`

const revenueSQL = `
SELECT day, sum(amount) AS revenue, count(*) AS orders
FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to
GROUP BY day ORDER BY day`

// warehouse creates a database of the test's own holding the sales table,
// and returns its URL and a connection to it for the test's own checks.
func warehouse(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	dsn := sqltest.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, salesSchema); err != nil {
		t.Fatal(err)
	}
	return dsn, conn
}

func newPostgres(t *testing.T, dsn string, reports map[string]string, cfg SQLConfig) *Postgres {
	t.Helper()
	p, err := NewPostgres(context.Background(), dsn, reports, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// withParams returns dsn with query parameters added.
func withParams(t *testing.T, dsn string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func reportKey(report, customer, from, to string) dashcache.ReportKey {
	k := dashcache.ReportKey{Report: report, Customer: customer}
	f, _ := time.Parse(time.DateOnly, from)
	tt, _ := time.Parse(time.DateOnly, to)
	k.From, k.To = dashcache.DayOf(f), dashcache.DayOf(tt)
	return k
}

// january is acme's report of January 2024.
func january(report string) dashcache.ReportKey {
	return reportKey(report, "acme", "2024-01-01", "2024-01-31")
}

// providerError returns err's *dashcache.ProviderError, failing the test
// if there is none or its outcome is not want.
func providerError(t *testing.T, err error, want dashcache.ProviderOutcome) *dashcache.ProviderError {
	t.Helper()
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want a *dashcache.ProviderError", err, err)
	}
	if pe.Outcome != want {
		t.Fatalf("outcome %s, want %s: %v", pe.Outcome, want, err)
	}
	return pe
}

// running returns the statements that sessions of dashcache are running on
// conn's database, or sit in a transaction over: none, once a call has
// returned.
func running(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT state || ': ' || query FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'dashcache' AND state <> 'idle'`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func count(t *testing.T, conn *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestPostgresTypes: each type becomes the JSON its documentation (Query)
// says, exactly; any other type, and a value JSON cannot hold, is an error
// that names the column.
func TestPostgresTypes(t *testing.T) {
	t.Parallel()
	dsn, _ := warehouse(t)
	cases := []struct {
		name, expr, want string
	}{
		{"int2", "(-32768)::int2", `-32768`},
		{"int4", "2147483647::int4", `2147483647`},
		{"int8", "9223372036854775807::int8", `9223372036854775807`}, // past float64's exact integers
		{"oid", "4294967295::oid", `4294967295`},
		{"numeric-30-digits", "12345678901234567890.1234567891::numeric(38,10)", `12345678901234567890.1234567891`},
		{"numeric-small", "(-0.0000000001)::numeric(38,10)", `-0.0000000001`},
		{"numeric-large", "1e30::numeric", `1000000000000000000000000000000`},
		{"float8", "0.1::float8", `0.1`},
		{"float8-exponent", "1e300::float8", `1e+300`},
		{"float8-tiny", "(-2.5e-7)::float8", `-2.5e-07`},
		{"float4", "0.1::float4", `0.1`},
		{"float8-nan", "'NaN'::float8", `null`},
		{"float8-infinity", "'Infinity'::float8", `null`},
		{"float4-minus-infinity", "'-Infinity'::float4", `null`},
		{"bool-true", "true", `true`},
		{"bool-false", "false", `false`},
		{"date", "'2024-02-29'::date", `"2024-02-29"`},
		{"timestamptz", "'2024-03-01 12:34:56.789012+02'::timestamptz", `"2024-03-01T10:34:56.789012Z"`},
		{"timestamptz-whole", "'2024-03-01 00:00:00-05'::timestamptz", `"2024-03-01T05:00:00Z"`},
		{"timestamp", "'2024-03-01 12:34:56.5'::timestamp", `"2024-03-01T12:34:56.5Z"`},
		{"text", `E'say "hi" \\ C:\\dir\n\tna\u00efve \u65e5\u672c \U0001F600 <a&b> \u2028 \x01'`,
			`"say \"hi\" \\ C:\\dir\n\tnaïve 日本 😀 <a&b> \u2028 \u0001"`},
		{"varchar", "'abc'::varchar(10)", `"abc"`},
		{"bpchar", "'ab'::char(4)", `"ab  "`},
		{"name", "'tbl'::name", `"tbl"`},
		{"uuid", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid", `"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"`},
		{"json", `'{"b": [1, 2.50], "a": "x"}'::json`, `{"b": [1, 2.50], "a": "x"}`},   // as written
		{"jsonb", `'{"b": [1, 2.50], "a": "x"}'::jsonb`, `{"a": "x", "b": [1, 2.50]}`}, // as jsonb prints it
		{"null", "NULL::int8", `null`},
		{"null-text", "NULL::text", `null`},
	}
	reports := map[string]string{}
	for _, c := range cases {
		reports[c.name] = "SELECT " + c.expr + " AS v WHERE @customer::text IS NOT NULL"
	}
	reports["order"] = `SELECT 2 AS b, 1 AS a, 'x' AS "we""ird\k", NULL::date AS "ünï" WHERE @customer::text IS NOT NULL`
	reports["no-rows"] = "SELECT 1 AS v WHERE @customer::text IS NULL"
	reports["rows"] = "SELECT g AS n, g % 2 = 0 AS even FROM generate_series(1, 3) g WHERE @customer::text IS NOT NULL ORDER BY g"
	p := newPostgres(t, dsn, reports, SQLConfig{})
	ctx := context.Background()

	for _, c := range cases {
		got, err := p.Query(ctx, january(c.name))
		if err != nil {
			t.Errorf("%s (%s): %v", c.name, c.expr, err)
			continue
		}
		if want := `[{"v":` + c.want + `}]`; string(got) != want {
			t.Errorf("%s (%s):\n got %s\nwant %s", c.name, c.expr, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: not valid JSON: %s", c.name, got)
		}
	}
	for report, want := range map[string]string{
		"order":   `[{"b":2,"a":1,"we\"ird\\k":"x","ünï":null}]`, // the query's order, not sorted
		"no-rows": `[]`,
		"rows":    `[{"n":1,"even":false},{"n":2,"even":true},{"n":3,"even":false}]`,
	} {
		if got, err := p.Query(ctx, january(report)); err != nil || string(got) != want {
			t.Errorf("%s: got %s, %v; want %s", report, got, err, want)
		}
	}
}

// TestPostgresTypeErrors: a column of a type with no JSON form fails the
// call as permanent, naming the column and its type and saying to cast it,
// even when the value is NULL or there are no rows; a value JSON cannot
// hold fails it as invalid, naming the column.
func TestPostgresTypeErrors(t *testing.T) {
	t.Parallel()
	dsn, _ := warehouse(t)
	cases := []struct {
		name, sql string
		outcome   dashcache.ProviderOutcome
		want      []string // in the error's text
	}{
		{"point", "SELECT 1 AS n, point(1, 2) AS p", dashcache.OutcomePermanent, []string{`column "p"`, "point", "p::text"}},
		{"point-null", "SELECT NULL::point AS p", dashcache.OutcomePermanent, []string{`column "p"`, "point"}},
		{"interval", "SELECT interval '1 day' AS i WHERE false", dashcache.OutcomePermanent, []string{`column "i"`, "interval"}},
		{"bytea", "SELECT '\\x00'::bytea AS b", dashcache.OutcomePermanent, []string{`column "b"`, "bytea"}},
		{"array", "SELECT ARRAY[1, 2] AS a", dashcache.OutcomePermanent, []string{`column "a"`, "int4[]"}},
		{"twice", "SELECT 1 AS a, 2 AS a", dashcache.OutcomePermanent, []string{`column name "a" appears more than once`}},
		{"numeric-nan", "SELECT 'NaN'::numeric AS total", dashcache.OutcomeInvalid, []string{`column "total"`, "NaN"}},
		{"numeric-infinity", "SELECT 'Infinity'::numeric AS total", dashcache.OutcomeInvalid, []string{`column "total"`, "Infinity"}},
		{"date-infinity", "SELECT 'infinity'::date AS d", dashcache.OutcomeInvalid, []string{`column "d"`, "infinity"}},
		{"date-bc", "SELECT '0044-03-15 BC'::date AS d", dashcache.OutcomeInvalid, []string{`column "d"`, "BC"}},
		{"timestamp-infinity", "SELECT '-infinity'::timestamptz AS at", dashcache.OutcomeInvalid, []string{`column "at"`, "infinity"}},
	}
	reports := map[string]string{}
	for _, c := range cases {
		sql := c.sql
		if strings.Contains(sql, "WHERE") {
			sql += " AND @customer::text IS NOT NULL"
		} else {
			sql += " WHERE @customer::text IS NOT NULL"
		}
		reports[c.name] = sql
	}
	p := newPostgres(t, dsn, reports, SQLConfig{})
	for _, c := range cases {
		data, err := p.Query(context.Background(), january(c.name))
		if err == nil {
			t.Errorf("%s: answered %s, want an error", c.name, data)
			continue
		}
		pe := providerError(t, err, c.outcome)
		for _, w := range append(c.want, "report "+c.name) {
			if !strings.Contains(pe.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, pe.Error(), w)
			}
		}
	}
}

// TestPostgresSettings: the session settings that shape the values' text
// are pinned, over the DSN's own; the call runs read-only under the
// statement_timeout of the config.
func TestPostgresSettings(t *testing.T) {
	t.Parallel()
	dsn, _ := warehouse(t)
	dsn = withParams(t, dsn, "timezone", "America/New_York", "DateStyle", "German, DMY")
	p := newPostgres(t, dsn, map[string]string{
		"settings": `SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds,
			current_setting('client_encoding') AS enc, current_setting('application_name') AS app,
			current_setting('transaction_read_only') AS ro, current_setting('statement_timeout') AS st,
			'2024-01-02 03:04:05+00'::timestamptz::text AS ts
			WHERE @customer::text IS NOT NULL`,
	}, SQLConfig{Timeout: 1500 * time.Millisecond})
	got, err := p.Query(context.Background(), january("settings"))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"tz":"UTC","ds":"ISO, MDY","enc":"UTF8","app":"dashcache","ro":"on","st":"1500ms","ts":"2024-01-02 03:04:05+00"}]`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestPostgresTenantIsolation: @customer, @from and @to are bound as
// values, never spliced into the SQL: a customer name full of SQL gets no
// rows and changes nothing, and one customer never sees another's rows.
func TestPostgresTenantIsolation(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	p := newPostgres(t, dsn, map[string]string{"revenue": revenueSQL}, SQLConfig{})
	ctx := context.Background()

	for customer, want := range map[string]string{
		"acme":   `[{"day":"2024-01-01","revenue":10.50,"orders":1},{"day":"2024-01-02","revenue":20.00,"orders":1}]`,
		"globex": `[{"day":"2024-01-01","revenue":99.99,"orders":1},{"day":"2024-01-02","revenue":1.00,"orders":1}]`,
		"ACME":   `[]`,
	} {
		got, err := p.Query(ctx, reportKey("revenue", customer, "2024-01-01", "2024-01-31"))
		if err != nil || string(got) != want {
			t.Errorf("%s: got %s, %v; want %s", customer, got, err, want)
		}
	}
	// @from and @to bound the range, both ends included.
	got, err := p.Query(ctx, reportKey("revenue", "acme", "2024-01-02", "2024-02-01"))
	if want := `[{"day":"2024-01-02","revenue":20.00,"orders":1},{"day":"2024-02-01","revenue":5.25,"orders":1}]`; err != nil || string(got) != want {
		t.Errorf("acme 2024-01-02..2024-02-01: got %s, %v; want %s", got, err, want)
	}

	for _, customer := range []string{
		`x' OR '1'='1`,
		`acme' --`,
		`acme; DROP TABLE sales; --`,
		`acme'); DELETE FROM sales; --`,
		`' UNION SELECT day, amount, 1 FROM sales --`,
		`@customer`,
		`$1`,
	} {
		got, err := p.Query(ctx, reportKey("revenue", customer, "2024-01-01", "2024-12-31"))
		if err != nil || string(got) != `[]` {
			t.Errorf("customer %q: got %s, %v; want [] (no rows)", customer, got, err)
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM sales"); n != 5 {
		t.Errorf("sales has %d rows after the queries, want 5", n)
	}
}

// TestPostgresReadOnly: a report that tries to write fails as permanent,
// and nothing is written; a single statement ending in ";" is fine.
func TestPostgresReadOnly(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE SEQUENCE ids"); err != nil {
		t.Fatal(err)
	}
	writes := map[string]string{
		"cte-insert":     `WITH w AS (INSERT INTO sales VALUES (@customer, '2024-01-03', 1) RETURNING amount) SELECT amount FROM w`,
		"two-statements": `SELECT amount FROM sales WHERE customer = @customer; DELETE FROM sales`,
		"read-write":     `SELECT set_config('transaction_read_only', 'off', true) AS x, amount FROM sales WHERE customer = @customer`,
		"nextval":        `SELECT nextval('ids') AS id, amount FROM sales WHERE customer = @customer`,
		"for-update":     `SELECT amount FROM sales WHERE customer = @customer FOR UPDATE`,
	}
	reports := map[string]string{"semicolon": "SELECT amount FROM sales WHERE customer = @customer ORDER BY day; "}
	for name, sql := range writes {
		reports[name] = sql
	}
	p := newPostgres(t, dsn, reports, SQLConfig{})

	for name := range writes {
		data, err := p.Query(ctx, january(name))
		if err == nil {
			t.Errorf("%s: answered %s, want an error", name, data)
			continue
		}
		pe := providerError(t, err, dashcache.OutcomePermanent)
		t.Logf("%s: %v", name, pe)
		if pe.Code == "" {
			t.Errorf("%s: no SQLSTATE in Code", name)
		}
	}
	if n := count(t, conn, "SELECT count(*) FROM sales"); n != 5 {
		t.Errorf("sales has %d rows, want 5", n)
	}
	if n := count(t, conn, "SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM ids"); n != 1 {
		t.Errorf("the sequence moved on to %d", n)
	}
	if got, err := p.Query(ctx, january("semicolon")); err != nil || string(got) != `[{"amount":10.50},{"amount":20.00},{"amount":5.25}]` {
		t.Errorf("semicolon: %s, %v", got, err)
	}
}

// TestPostgresStatementTimeout: a statement past the timeout is ended by
// the server: transient, SQLSTATE 57014, and nothing left running.
func TestPostgresStatementTimeout(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	p := newPostgres(t, dsn, map[string]string{
		"slow": "SELECT count(*) AS n FROM sales, pg_sleep(30) WHERE customer = @customer",
	}, SQLConfig{Timeout: 300 * time.Millisecond})

	_, err := p.Query(context.Background(), january("slow"))
	pe := providerError(t, err, dashcache.OutcomeTransient)
	if pe.Code != "57014" {
		t.Errorf("code %q, want 57014 (query_canceled): %v", pe.Code, err)
	}
	if !strings.Contains(err.Error(), "statement timeout") || !strings.Contains(err.Error(), "report slow") {
		t.Errorf("error %q does not say statement timeout and the report", err)
	}
	if r := running(t, conn); len(r) > 0 {
		t.Errorf("still running on the server after the call returned: %q", r)
	}
}

// TestPostgresCancel: a call whose context ends (its worker lost the lock)
// has its statement cancelled on the server, not only its socket closed:
// the server answers 57014, nothing is left running, and the pool's
// connection serves the next call.
func TestPostgresCancel(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	p := newPostgres(t, withParams(t, dsn, "pool_max_conns", "1"), map[string]string{
		"slow":    "SELECT count(*) AS n FROM sales, pg_sleep(60) WHERE customer = @customer",
		"revenue": revenueSQL,
	}, SQLConfig{Timeout: time.Minute})

	lost := errors.New("lock lost")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	done := make(chan error, 1)
	go func() {
		_, err := p.Query(ctx, january("slow"))
		done <- err
	}()
	// Sleeping, not only parsed: pgx prepares the statement (state active,
	// the same query text) before it executes it.
	wait.For(t, "the slow statement to sleep on the server", 10*time.Second, func() bool {
		return count(t, conn, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND application_name = 'dashcache' AND wait_event = 'PgSleep'`) == 1
	})
	cancel(lost)
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Query still running 10s after its context ended")
	}
	pe := providerError(t, err, dashcache.OutcomeTransient)
	if pe.Code != "57014" {
		t.Errorf("code %q, want 57014: the server cancelled the statement: %v", pe.Code, err)
	}
	if !errors.Is(err, lost) {
		t.Errorf("error %v does not wrap the context's cause", err)
	}
	if r := running(t, conn); len(r) > 0 {
		t.Errorf("still running on the server after the call returned: %q", r)
	}
	if got, err := p.Query(context.Background(), january("revenue")); err != nil || !strings.HasPrefix(string(got), `[{"day":"2024-01-01"`) {
		t.Errorf("the next call: %s, %v", got, err)
	}
}

// TestPostgresMaxRows: MaxRows rows are an answer, one more is invalid; a
// huge answer is stopped on the server at the limit, not read to its end.
func TestPostgresMaxRows(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	p := newPostgres(t, dsn, map[string]string{
		"three": "SELECT amount FROM sales WHERE customer = @customer ORDER BY day",
		"two":   "SELECT amount FROM sales WHERE customer = @customer AND day < '2024-02-01' ORDER BY day",
		// In the select list, generate_series streams its rows (in FROM
		// it would build all of them first).
		"endless": "SELECT generate_series(1, 500000000) AS n WHERE @customer::text IS NOT NULL",
	}, SQLConfig{MaxRows: 2, Timeout: time.Minute})
	ctx := context.Background()

	if got, err := p.Query(ctx, january("two")); err != nil || string(got) != `[{"amount":10.50},{"amount":20.00}]` {
		t.Errorf("two rows: %s, %v", got, err)
	}
	_, err := p.Query(ctx, january("three"))
	if pe := providerError(t, err, dashcache.OutcomeInvalid); !strings.Contains(pe.Error(), "more than 2 rows") {
		t.Errorf("error %q does not say more than 2 rows", pe.Error())
	}

	start := time.Now()
	_, err = p.Query(ctx, january("endless"))
	providerError(t, err, dashcache.OutcomeInvalid)
	// Read to its end, the answer would take minutes, and the statement
	// timeout (a minute) would end it.
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the call took %s: the statement was not stopped at the limit", d)
	}
	if r := running(t, conn); len(r) > 0 {
		t.Errorf("still running on the server after the call returned: %q", r)
	}
}

// TestPostgresMaxBytes: an answer larger than MaxBytes is invalid.
func TestPostgresMaxBytes(t *testing.T) {
	t.Parallel()
	dsn, _ := warehouse(t)
	p := newPostgres(t, dsn, map[string]string{
		"wide": "SELECT repeat('x', 600) AS s FROM generate_series(1, 2) WHERE @customer::text IS NOT NULL",
	}, SQLConfig{MaxBytes: 1000})
	_, err := p.Query(context.Background(), january("wide"))
	if pe := providerError(t, err, dashcache.OutcomeInvalid); !strings.Contains(pe.Error(), "larger than 1000 bytes") {
		t.Errorf("error %q does not say larger than 1000 bytes", pe.Error())
	}
}

// TestPostgresErrors: the server's errors are classified by SQLSTATE, which
// is the error's Code, and the error names the report.
func TestPostgresErrors(t *testing.T) {
	t.Parallel()
	dsn, _ := warehouse(t)
	cases := map[string]struct {
		sql  string
		code string
	}{
		"syntax":    {"SELECT amount FROM sales WHERE customer = @customer ORDER", "42601"},
		"table":     {"SELECT amount FROM salez WHERE customer = @customer", "42P01"},
		"column":    {"SELECT amout FROM sales WHERE customer = @customer", "42703"},
		"function":  {"SELECT no_such_fn(amount) AS x FROM sales WHERE customer = @customer", "42883"},
		"division":  {"SELECT amount / 0 AS x FROM sales WHERE customer = @customer", "22012"},
		"cast":      {"SELECT amount FROM sales WHERE customer = @customer AND day = 'soon'", "22007"},
		"param":     {"SELECT amount FROM sales WHERE @customer IS NULL", "42P18"}, // its type cannot be inferred
		"int-param": {"SELECT amount FROM sales WHERE length(customer) = @customer", "22P02"},
	}
	reports := map[string]string{}
	for name, c := range cases {
		reports[name] = c.sql
	}
	p := newPostgres(t, dsn, reports, SQLConfig{})
	for name, c := range cases {
		_, err := p.Query(context.Background(), january(name))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		pe := providerError(t, err, dashcache.OutcomePermanent)
		if pe.Code != c.code {
			t.Errorf("%s: code %q, want %s: %v", name, pe.Code, c.code, err)
		}
		if !strings.Contains(err.Error(), "report "+name+":") || !strings.Contains(err.Error(), "code "+c.code) {
			t.Errorf("%s: error %q does not name the report and the code", name, err)
		}
	}
}

// TestPostgresPrivilege: a role without the privilege fails as permanent,
// 42501.
func TestPostgresPrivilege(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	role := "dashcache_reader_" + strings.TrimPrefix(conn.Config().Database, "dashcache_test_")
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// After the pool's sessions as the role are closed (cleanups run
		// last first).
		if _, err := conn.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("dropping role %s: %v", role, err)
		}
	})
	u, _ := url.Parse(dsn)
	u.User = url.User(role)
	p := newPostgres(t, u.String(), map[string]string{"revenue": revenueSQL}, SQLConfig{})
	_, err := p.Query(ctx, january("revenue"))
	if pe := providerError(t, err, dashcache.OutcomePermanent); pe.Code != "42501" {
		t.Errorf("code %q, want 42501: %v", pe.Code, err)
	}
}

// TestPostgresSchemaChange: a statement pgx prepared before a change of the
// result's types fails once, as transient, and the next call prepares it
// again.
func TestPostgresSchemaChange(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	p := newPostgres(t, withParams(t, dsn, "pool_max_conns", "1"), map[string]string{
		"amounts": "SELECT amount FROM sales WHERE customer = @customer ORDER BY day",
	}, SQLConfig{})
	ctx := context.Background()
	if _, err := p.Query(ctx, january("amounts")); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER TABLE sales ALTER COLUMN amount TYPE float8"); err != nil {
		t.Fatal(err)
	}
	_, err := p.Query(ctx, january("amounts"))
	if pe := providerError(t, err, dashcache.OutcomeTransient); pe.Code != "0A000" {
		t.Errorf("the first call after the change: code %q, want 0A000 (cached plan must not change result type): %v", pe.Code, err)
	}
	if got, err := p.Query(ctx, january("amounts")); err != nil || string(got) != `[{"amount":10.5},{"amount":20},{"amount":5.25}]` {
		t.Errorf("after the change: %s, %v", got, err)
	}
}

func TestPostgresUnknownReport(t *testing.T) {
	t.Parallel()
	dsn, _ := warehouse(t)
	p := newPostgres(t, dsn, map[string]string{"revenue": revenueSQL}, SQLConfig{})
	for _, report := range []string{"", "revenu", "Revenue"} {
		_, err := p.Query(context.Background(), january(report))
		pe := providerError(t, err, dashcache.OutcomePermanent)
		if !strings.Contains(pe.Error(), "not one of this postgres back end's reports (revenue)") {
			t.Errorf("%q: error %q does not say which reports there are", report, pe.Error())
		}
	}
	if n := p.pool.Stat().AcquireCount(); n != 0 {
		t.Errorf("%d connections acquired for unknown reports, want 0", n)
	}
}

// TestNewPostgresChecks: every problem of the reports and the config is
// reported at once, each naming its report.
func TestNewPostgresChecks(t *testing.T) {
	t.Parallel()
	_, err := NewPostgres(context.Background(), "postgres://127.0.0.1/db", map[string]string{
		"ok":         revenueSQL,
		"everyone":   "SELECT * FROM sales",
		"Bad Name":   revenueSQL,
		"extraparam": "SELECT * FROM sales WHERE customer = @customer AND region = @region",
	}, SQLConfig{MaxRows: -1})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"MaxRows must not be negative",
		"report everyone: query: does not use @customer",
		`report "Bad Name": the name`,
		"report extraparam: query: has a named parameter other than @customer, @from and @to",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "report ok") {
		t.Errorf("error %q blames report ok", err)
	}
	if _, err := NewPostgres(context.Background(), "postgres://127.0.0.1/db", nil, SQLConfig{}); err == nil {
		t.Error("no error for no reports")
	}
	// The simple protocol would splice @customer into the text and run a
	// report's several statements.
	_, err = NewPostgres(context.Background(), "postgres://u:pw@127.0.0.1/db?default_query_exec_mode=simple_protocol",
		map[string]string{"ok": revenueSQL}, SQLConfig{})
	if err == nil || !strings.Contains(err.Error(), "simple_protocol") || strings.Contains(err.Error(), "pw") {
		t.Errorf("a DSN asking for the simple protocol: %v", err)
	}
	for _, mode := range []string{"exec", "describe_exec"} { // PgBouncer's
		p, err := NewPostgres(context.Background(), "postgres://127.0.0.1/db?default_query_exec_mode="+mode, map[string]string{"ok": revenueSQL}, SQLConfig{})
		if err != nil {
			t.Errorf("default_query_exec_mode=%s: %v", mode, err)
			continue
		}
		p.Close()
	}
}

// TestPostgresSecrets: no error shows the DSN or its password: not one
// that parsing the DSN, connecting, or the server found.
func TestPostgresSecrets(t *testing.T) {
	t.Parallel()
	const password = "s3cr3t-pw"
	dsn := sqltest.Postgres(t)
	reports := map[string]string{"revenue": revenueSQL}
	check := func(what, dsn string, err error) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), dsn) {
			t.Errorf("%s: the error shows the DSN or its password: %v", what, err)
		}
	}

	for what, dsn := range map[string]string{
		"unparsable": "postgres://dashcache:" + password + "@127.0.0.1:5432/db?sslmode=bogus",
		"broken URL": "postgres://dashcache:" + password + "@[::1/db",
		"key=value":  "host=127.0.0.1 password='" + password + " dbname=db",
	} {
		_, err := NewPostgres(context.Background(), dsn, reports, SQLConfig{})
		check(what, dsn, err)
	}

	closedDSN := "postgres://dashcache:" + password + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=5"
	closed := newPostgres(t, closedDSN, reports, SQLConfig{})
	_, err := closed.Query(context.Background(), january("revenue"))
	check("nothing listening", closedDSN, err)
	providerError(t, err, dashcache.OutcomeTransient)
	t.Logf("nothing listening: %v", err)

	u, _ := url.Parse(dsn)
	u.User = url.UserPassword(u.User.Username(), password)
	u.Path = "/dashcache_no_such_database"
	missing := newPostgres(t, u.String(), reports, SQLConfig{})
	_, err = missing.Query(context.Background(), january("revenue"))
	check("no such database", u.String(), err)
	t.Logf("no such database: %v", err)
	if pe := providerError(t, err, dashcache.OutcomePermanent); pe.Code != "3D000" {
		t.Errorf("no such database: code %q, want 3D000", pe.Code)
	}

	// The redaction itself, should a message ever quote the secrets.
	secrets := []string{"postgres://u:" + password + "@h/db", password}
	msg := redact(errors.New("at postgres://u:"+password+"@h/db, and "+password), secrets).Error()
	if strings.Contains(msg, password) || msg != "at [redacted], and [redacted]" {
		t.Errorf("redacted: %q", msg)
	}
}

// TestPostgresPrepare: Prepare prepares each report without running it,
// names each report's columns and types, and says of each report that
// cannot be prepared, or has columns with no JSON form, what is wrong.
func TestPostgresPrepare(t *testing.T) {
	t.Parallel()
	dsn, conn := warehouse(t)
	ctx := context.Background()
	// bump writes a row each time it runs.
	if _, err := conn.Exec(ctx, `CREATE TABLE bumps (at timestamptz);
		CREATE FUNCTION bump() RETURNS bigint LANGUAGE sql VOLATILE AS
		$$ INSERT INTO bumps VALUES (now()); SELECT count(*) FROM bumps $$`); err != nil {
		t.Fatal(err)
	}
	p := newPostgres(t, dsn, map[string]string{
		"revenue": revenueSQL,
		"bump":    "SELECT bump() AS n, pg_sleep(60)::text AS slept WHERE @customer::text IS NOT NULL",
		"shapes":  "SELECT 1 AS n, point(1, 2) AS p, interval '1 day' AS i FROM sales WHERE customer = @customer",
		"broken":  "SELECT amount FROM sales WHERE customer = @customer ORDER",
		"missing": "SELECT amount FROM salez WHERE customer = @customer",
	}, SQLConfig{Timeout: 10 * time.Second})

	prepared, err := p.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(t, conn, "SELECT count(*) FROM bumps"); n != 0 {
		t.Errorf("Prepare ran report bump: %d rows in bumps", n)
	}
	if len(prepared) != 5 {
		t.Errorf("%d reports prepared, want 5: %v", len(prepared), prepared)
	}
	want := map[string][]Column{
		"revenue": {{"day", "date"}, {"revenue", "numeric"}, {"orders", "bigint"}},
		"bump":    {{"n", "bigint"}, {"slept", "text"}},
		"shapes":  {{"n", "integer"}, {"p", "point"}, {"i", "interval"}},
		"broken":  nil,
		"missing": nil,
	}
	for name, w := range want {
		if got := prepared[name].Columns; !equalColumns(got, w) {
			t.Errorf("%s: columns %v, want %v", name, got, w)
		}
	}
	for _, name := range []string{"revenue", "bump"} {
		if err := prepared[name].Err; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	shapes := providerError(t, prepared["shapes"].Err, dashcache.OutcomePermanent)
	for _, w := range []string{"report shapes:", `column "p" has type point`, `column "i" has type interval`, "::text"} {
		if !strings.Contains(shapes.Error(), w) {
			t.Errorf("shapes: error %q does not say %q", shapes.Error(), w)
		}
	}
	for name, code := range map[string]string{"broken": "42601", "missing": "42P01"} {
		pe := providerError(t, prepared[name].Err, dashcache.OutcomePermanent)
		if pe.Code != code || !strings.Contains(pe.Error(), "report "+name+":") {
			t.Errorf("%s: code %q, want %s: %v", name, pe.Code, code, pe)
		}
	}
}

func equalColumns(a, b []Column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestClassify: the SQLSTATEs that say the server cannot answer now are
// transient, the others permanent; an error without one is transient.
func TestClassify(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]dashcache.ProviderOutcome{
		"08006": dashcache.OutcomeTransient, // connection_failure
		"08001": dashcache.OutcomeTransient,
		"57014": dashcache.OutcomeTransient, // query_canceled: statement_timeout
		"40001": dashcache.OutcomeTransient, // serialization_failure
		"40P01": dashcache.OutcomeTransient, // deadlock_detected
		"53300": dashcache.OutcomeTransient, // too_many_connections
		"53200": dashcache.OutcomeTransient, // out_of_memory
		"57P01": dashcache.OutcomeTransient, // admin_shutdown
		"57P02": dashcache.OutcomeTransient, // crash_shutdown
		"57P03": dashcache.OutcomeTransient, // cannot_connect_now
		"55P03": dashcache.OutcomeTransient, // lock_not_available
		"58030": dashcache.OutcomeTransient, // io_error
		"42601": dashcache.OutcomePermanent, // syntax_error
		"42703": dashcache.OutcomePermanent, // undefined_column
		"42P01": dashcache.OutcomePermanent, // undefined_table
		"42501": dashcache.OutcomePermanent, // insufficient_privilege
		"42883": dashcache.OutcomePermanent, // undefined_function
		"42P18": dashcache.OutcomePermanent, // indeterminate_datatype
		"22012": dashcache.OutcomePermanent, // division_by_zero
		"22P02": dashcache.OutcomePermanent, // invalid_text_representation
		"25006": dashcache.OutcomePermanent, // read_only_sql_transaction
		"28P01": dashcache.OutcomePermanent, // invalid_password
		"3D000": dashcache.OutcomePermanent, // invalid_catalog_name
		"0A000": dashcache.OutcomePermanent, // feature_not_supported
		"XX000": dashcache.OutcomePermanent, // internal_error
	} {
		outcome, gotCode := classify(&pgconn.PgError{Code: code, Message: "m"})
		if outcome != want || gotCode != code {
			t.Errorf("%s: %s, %q; want %s", code, outcome, gotCode, want)
		}
	}
	if o, _ := classify(&pgconn.PgError{Code: "0A000", Message: "cached plan must not change result type"}); o != dashcache.OutcomeTransient {
		t.Errorf("cached plan must not change result type: %s, want transient", o)
	}
	for _, err := range []error{io.EOF, context.Canceled, context.DeadlineExceeded, errors.New("conn closed")} {
		if o, code := classify(err); o != dashcache.OutcomeTransient || code != "" {
			t.Errorf("%v: %s, %q; want transient, no code", err, o, code)
		}
	}
}
