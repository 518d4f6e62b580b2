package provider

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/sqltest"
	"github.com/dashcache/dashcache/internal/wait"
)

// The integration tests of MySQL run on the real MySQL or MariaDB of
// DASHCACHE_TEST_MYSQL_URL, each in a database of its own
// (internal/sqltest).

var mysqlSalesSchema = []string{
	"CREATE TABLE sales (customer varchar(200) NOT NULL, day date NOT NULL, amount decimal(12,2) NOT NULL)",
	`INSERT INTO sales VALUES
	  ('acme',   '2024-01-01', 10.50),
	  ('acme',   '2024-01-02', 20.00),
	  ('acme',   '2024-02-01',  5.25),
	  ('globex', '2024-01-01', 99.99),
	  ('globex', '2024-01-02',  1.00)`,
}

const mysqlRevenueSQL = `
SELECT day, sum(amount) AS revenue, count(*) AS orders
FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to
GROUP BY day ORDER BY day`

// mysqlWarehouse creates a database of the test's own holding the sales
// table, and returns its DSN and a pool on it for the test's own checks.
func mysqlWarehouse(t *testing.T) (string, *sql.DB) {
	t.Helper()
	dsn := sqltest.MySQL(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range mysqlSalesSchema {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	return dsn, db
}

func newMySQL(t *testing.T, dsn string, reports map[string]string, cfg SQLConfig) *MySQL {
	t.Helper()
	m, err := NewMySQL(context.Background(), dsn, reports, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

func mysqlCount(t *testing.T, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestMySQLTypes: each type becomes the JSON Query's documentation says,
// exactly; a BLOB is an error that names the column.
func TestMySQLTypes(t *testing.T) {
	t.Parallel()
	dsn, db := mysqlWarehouse(t)
	if _, err := db.Exec(`CREATE TABLE types (
		id int PRIMARY KEY, big bigint, ubig bigint unsigned, dec38 decimal(38,10), dbl double, flt float,
		d date, dt datetime(6), ts timestamp(3) NULL, vc varchar(100), ch char(4), txt text,
		flag bool, js json, nothing int, en enum('a','b'), blb blob)`); err != nil {
		t.Fatal(err)
	}
	// The session of the insert is in +02:00: the TIMESTAMP is stored in
	// UTC and read back in UTC whatever the zone of whoever wrote it.
	if _, err := db.Exec(`SET time_zone = '+02:00'`); err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, stmt := range []string{
		"SET time_zone = '+02:00'",
		`INSERT INTO types VALUES (1, 9223372036854775807, 18446744073709551615, 12345678901234567890.1234567891,
			0.1, 0.5, '2024-02-29', '2024-03-01 12:34:56.789012', '2024-03-01 12:00:00.500',
			?, 'ab', 'long text', TRUE, '{"b": [1, 2.50], "a": "x"}', NULL, 'b', x'00ff')`,
	} {
		if _, err := conn.ExecContext(context.Background(), stmt, mysqlArgs(stmt)...); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ col, want string }{
		{"big", `9223372036854775807`},
		{"ubig", `18446744073709551615`},
		{"dec38", `12345678901234567890.1234567891`},
		{"-dec38", `-12345678901234567890.1234567891`},
		{"dbl", `0.1`},
		{"1e300", `1e+300`}, // a DOUBLE literal
		{"flt", `0.5`},
		{"d", `"2024-02-29"`},
		{"dt", `"2024-03-01T12:34:56.789012Z"`},
		{"ts", `"2024-03-01T10:00:00.5Z"`},
		{"vc", `"say \"hi\" \\ C:\\dir\n\tnaïve 日本 😀 <a&b> \u2028 \u0001"`},
		{"ch", `"ab"`}, // CHAR's trailing spaces are gone (PAD_CHAR_TO_FULL_LENGTH off)
		{"txt", `"long text"`},
		{"flag", `1`}, // BOOL is TINYINT(1): a number
		{"flag = 0", `0`},
		{"en", `"b"`},
		{"nothing", `null`},
		{"NULL", `null`},
		{"CAST('2024-01-02 03:04:05' AS DATETIME)", `"2024-01-02T03:04:05Z"`},
		{"CAST(blb AS CHAR)", `"\u0000?"`}, // the server makes utf8mb4 of it: 0xff is ?
	}
	reports := map[string]string{}
	for i, c := range cases {
		reports[strings.Repeat("c", i+1)] = "SELECT " + c.col + " AS v FROM types WHERE id = 1 AND @customer IS NOT NULL"
	}
	reports["json"] = "SELECT js AS v FROM types WHERE @customer IS NOT NULL"
	reports["order"] = "SELECT 2 AS b, 1 AS a, 'x' AS `we\"ird\\k`, NULL AS `ünï` FROM types WHERE @customer IS NOT NULL"
	reports["no-rows"] = "SELECT 1 AS v FROM types WHERE @customer IS NULL"
	reports["blob"] = "SELECT id, blb FROM types WHERE @customer IS NOT NULL"
	reports["blob-none"] = "SELECT id, blb FROM types WHERE @customer IS NULL"
	m := newMySQL(t, dsn, reports, SQLConfig{})
	ctx := context.Background()
	for i, c := range cases {
		got, err := m.Query(ctx, january(strings.Repeat("c", i+1)))
		if err != nil {
			t.Errorf("%s: %v", c.col, err)
			continue
		}
		if want := `[{"v":` + c.want + `}]`; string(got) != want {
			t.Errorf("%s:\n got %s\nwant %s", c.col, got, want)
		}
		if !json.Valid(got) {
			t.Errorf("%s: not valid JSON: %s", c.col, got)
		}
	}
	// MariaDB's JSON is a LONGTEXT: the driver cannot tell it from text.
	got, err := m.Query(ctx, january("json"))
	if err != nil {
		t.Fatal(err)
	}
	if s := string(got); s != `[{"v":{"b": [1, 2.50], "a": "x"}}]` && s != `[{"v":"{\"b\": [1, 2.50], \"a\": \"x\"}"}]` {
		t.Errorf("json: got %s", got)
	}
	for report, want := range map[string]string{
		"order":   `[{"b":2,"a":1,"we\"ird\\k":"x","ünï":null}]`,
		"no-rows": `[]`,
	} {
		if got, err := m.Query(ctx, january(report)); err != nil || string(got) != want {
			t.Errorf("%s: got %s, %v; want %s", report, got, err, want)
		}
	}
	for _, report := range []string{"blob", "blob-none"} {
		data, err := m.Query(ctx, january(report))
		pe := providerError(t, err, dashcache.OutcomePermanent)
		for _, want := range []string{`column "blb"`, "BLOB", "CAST(blb AS CHAR)"} {
			if !strings.Contains(pe.Error(), want) {
				t.Errorf("%s: answered %s, error %q does not contain %q", report, data, pe, want)
			}
		}
	}
}

// mysqlArgs gives the insert of TestMySQLTypes its one bound value: text
// that a spliced value would break.
func mysqlArgs(stmt string) []any {
	if strings.Contains(stmt, "?") {
		return []any{"say \"hi\" \\ C:\\dir\n\tnaïve 日本 😀 <a&b> \u2028 \x01"}
	}
	return nil
}

// TestMySQLTenantIsolation: a customer made of SQL metacharacters (quotes,
// backslashes, MySQL's comments) is a value, never SQL: it reads its own
// rows and no other customer's, and drops nothing.
func TestMySQLTenantIsolation(t *testing.T) {
	t.Parallel()
	dsn, db := mysqlWarehouse(t)
	const odd = `o'brien\' "x" \ # -- /*! OR 1 */ ; --`
	if _, err := db.Exec("INSERT INTO sales VALUES (?, '2024-01-05', 7.00)", odd); err != nil {
		t.Fatal(err)
	}
	m := newMySQL(t, dsn, map[string]string{"revenue": mysqlRevenueSQL}, SQLConfig{})
	ctx := context.Background()
	got, err := m.Query(ctx, reportKey("revenue", odd, "2024-01-01", "2024-01-31"))
	if want := `[{"day":"2024-01-05","revenue":7.00,"orders":1}]`; err != nil || string(got) != want {
		t.Errorf("customer %q: got %s, %v; want %s", odd, got, err, want)
	}

	got, err = m.Query(ctx, january("revenue"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"day":"2024-01-01","revenue":10.50,"orders":1},{"day":"2024-01-02","revenue":20.00,"orders":1}]`; string(got) != want {
		t.Errorf("acme's January:\n got %s\nwant %s", got, want)
	}
	for _, customer := range []string{
		"' OR '1'='1",
		`acme' OR customer <> '`,
		`\' OR 1=1 -- `,
		"acme'; DROP TABLE sales; -- ",
		"acme' # ",
		"acme\\' OR 1=1 #",
		"acme' /*! OR 1=1 */ '",
		`" OR ""="`,
		"acme\x00",
		"?",
		"@customer",
	} {
		got, err := m.Query(ctx, reportKey("revenue", customer, "2024-01-01", "2024-12-31"))
		if err != nil {
			t.Errorf("customer %q: %v", customer, err)
			continue
		}
		if string(got) != "[]" {
			t.Errorf("customer %q read rows: %s", customer, got)
		}
	}
	if n := mysqlCount(t, db, "SELECT count(*) FROM sales"); n != 6 {
		t.Errorf("%d sales rows, want 6", n)
	}
}

// TestMySQLParamsInLiterals: the server reads a report as mysqlParams
// does: @customer in a literal, a quoted name or a comment (#, -- and a
// space, /* */, a hint) is text, and 10--@to is arithmetic. Were one
// placeholder where the server reads none, or the reverse, the server
// would refuse the count of values.
func TestMySQLParamsInLiterals(t *testing.T) {
	t.Parallel()
	dsn, _ := mysqlWarehouse(t)
	m := newMySQL(t, dsn, map[string]string{"r": "SELECT /*+ @from */ '@customer' AS `@to`, " +
		`"it\"s @to" AS s, 'a\'@from' AS e, ` + "@customer AS c, 10--LENGTH(@customer) AS n /* @from /* @to */ # @to\n" +
		"-- @to\n FROM sales LIMIT 1"}, SQLConfig{})
	got, err := m.Query(context.Background(), january("r"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"@to":"@customer","s":"it\"s @to","e":"a'@from","c":"acme","n":14}]`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestMySQLSQLMode: whatever sql_mode the DSN (or the server) would give a
// session, the back end's sessions have mysqlSQLMode, without
// NO_BACKSLASH_ESCAPES and ANSI_QUOTES, and read a query as mysqlParams
// does: a backslash escapes in a string, so the OR 1=1 after it stays in
// the string, and "x" is a string.
func TestMySQLSQLMode(t *testing.T) {
	t.Parallel()
	dsn, _ := mysqlWarehouse(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Params = map[string]string{"sql_mode": "'NO_BACKSLASH_ESCAPES,ANSI_QUOTES'"}
	m := newMySQL(t, cfg.FormatDSN(), map[string]string{
		"mode":      "SELECT @@SESSION.sql_mode AS m, @customer AS c",
		"backslash": `SELECT day FROM sales WHERE customer = @customer OR customer = 'a\' OR 1=1 -- ' ORDER BY day`,
		"ansi":      `SELECT "x" AS q, @customer AS c`,
	}, SQLConfig{})
	for report, want := range map[string]string{
		"mode":      `[{"m":` + strings.ReplaceAll(mysqlSQLMode, "'", `"`) + `,"c":"acme"}]`,
		"backslash": `[{"day":"2024-01-01"},{"day":"2024-01-02"},{"day":"2024-02-01"}]`,
		"ansi":      `[{"q":"x","c":"acme"}]`,
	} {
		if got, err := m.Query(context.Background(), january(report)); err != nil || string(got) != want {
			t.Errorf("%s: %s, %v; want %s", report, got, err, want)
		}
	}
}

// TestMySQLReadOnly: a write fails as permanent (1792) and writes nothing.
func TestMySQLReadOnly(t *testing.T) {
	t.Parallel()
	dsn, db := mysqlWarehouse(t)
	m := newMySQL(t, dsn, map[string]string{
		"write": "INSERT INTO sales VALUES (@customer, '2024-01-01', 1)",
	}, SQLConfig{})
	_, err := m.Query(context.Background(), january("write"))
	pe := providerError(t, err, dashcache.OutcomePermanent)
	if pe.Code != "1792" {
		t.Errorf("code %q, want 1792: %v", pe.Code, err)
	}
	if n := mysqlCount(t, db, "SELECT count(*) FROM sales"); n != 5 {
		t.Errorf("%d sales rows, want 5", n)
	}
}

// TestMySQLFailures: a statement past its timeout is transient, with the
// server's number; a syntax error, an unknown table or column permanent;
// an unknown report permanent.
func TestMySQLFailures(t *testing.T) {
	t.Parallel()
	dsn, _ := mysqlWarehouse(t)
	m := newMySQL(t, dsn, map[string]string{
		"slow":    "SELECT SLEEP(5) AS s FROM sales WHERE customer = @customer",
		"syntax":  "SELEC 1 FROM sales WHERE customer = @customer",
		"table":   "SELECT 1 FROM nowhere WHERE customer = @customer",
		"column":  "SELECT nothing FROM sales WHERE customer = @customer",
		"revenue": mysqlRevenueSQL,
	}, SQLConfig{Timeout: 500 * time.Millisecond})
	ctx := context.Background()
	cases := []struct {
		report  string
		outcome dashcache.ProviderOutcome
		codes   []string
	}{
		{"slow", dashcache.OutcomeTransient, []string{"1969", "3024"}},
		{"syntax", dashcache.OutcomePermanent, []string{"1064"}},
		{"table", dashcache.OutcomePermanent, []string{"1146"}},
		{"column", dashcache.OutcomePermanent, []string{"1054"}},
		{"nope", dashcache.OutcomePermanent, []string{""}},
	}
	for _, c := range cases {
		start := time.Now()
		_, err := m.Query(ctx, january(c.report))
		pe := providerError(t, err, c.outcome)
		if !contains(c.codes, pe.Code) {
			t.Errorf("%s: code %q, want one of %q: %v", c.report, pe.Code, c.codes, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: took %s", c.report, d)
		}
	}
	// The pool still answers after each failure.
	if _, err := m.Query(ctx, january("revenue")); err != nil {
		t.Error(err)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestMySQLCancel: a call whose context ends mid-statement returns at once,
// and its statement is gone from the server's process list.
func TestMySQLCancel(t *testing.T) {
	t.Parallel()
	dsn, db := mysqlWarehouse(t)
	m := newMySQL(t, dsn, map[string]string{"sleep": "SELECT SLEEP(30) AS s, @customer AS c"}, SQLConfig{})
	sleeping := func() int {
		return mysqlCount(t, db, "SELECT count(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(30)%' AND DB = DATABASE()")
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := m.Query(ctx, january("sleep"))
		errc <- err
	}()
	wait.For(t, "the SLEEP running on the server", 5*time.Second, func() bool { return sleeping() == 1 })
	start := time.Now()
	cancel()
	err := <-errc
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the cancelled call took %s to return", d)
	}
	providerError(t, err, dashcache.OutcomeTransient)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not say the call was cancelled", err)
	}
	wait.For(t, "the SLEEP gone from the process list", 3*time.Second, func() bool { return sleeping() == 0 })
}

// TestMySQLLimits: more rows than MaxRows, or more bytes than MaxBytes, is
// an invalid answer.
func TestMySQLLimits(t *testing.T) {
	t.Parallel()
	dsn, _ := mysqlWarehouse(t)
	reports := map[string]string{"all": "SELECT * FROM sales WHERE customer <> @customer OR customer = @customer"}
	for _, cfg := range []SQLConfig{{MaxRows: 4}, {MaxBytes: 100}} {
		m := newMySQL(t, dsn, reports, cfg)
		_, err := m.Query(context.Background(), january("all"))
		providerError(t, err, dashcache.OutcomeInvalid)
	}
	m := newMySQL(t, dsn, reports, SQLConfig{MaxRows: 5})
	if _, err := m.Query(context.Background(), january("all")); err != nil {
		t.Errorf("5 rows with MaxRows 5: %v", err)
	}
}

// TestMySQLPrepare: every report is prepared, none is run (not even one
// that sleeps); each has its columns; a wrong one has a permanent error
// naming it, with the server's number, and one whose column has no JSON
// form names the column, as a PostgreSQL report's does.
func TestMySQLPrepare(t *testing.T) {
	t.Parallel()
	dsn, db := mysqlWarehouse(t)
	m := newMySQL(t, dsn, map[string]string{
		"revenue": mysqlRevenueSQL + " -- by day",
		"sleepy":  "SELECT customer, SLEEP(5) AS slept FROM sales WHERE @customer IS NOT NULL;", // 25 s if run
		"write":   "INSERT INTO sales VALUES (@customer, '2024-01-01', 1)",
		"table":   "SELECT 1 FROM nowhere WHERE customer = @customer",
		"blob":    "SELECT customer, CAST(customer AS BINARY) AS raw FROM sales WHERE customer = @customer",
	}, SQLConfig{Timeout: 3 * time.Second})
	start := time.Now()
	prepared, err := m.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Prepare took %s: it ran a report", took)
	}
	if len(prepared) != 5 || prepared["revenue"].Err != nil || prepared["sleepy"].Err != nil {
		t.Errorf("prepared %v, want revenue and sleepy ready", prepared)
	}
	if got := describe(prepared["sleepy"].Columns); got != "customer varchar, slept int" && got != "customer varchar, slept bigint" {
		t.Errorf("sleepy's columns: %q", got)
	}
	pe := providerError(t, prepared["table"].Err, dashcache.OutcomePermanent)
	if pe.Code != "1146" || !strings.Contains(pe.Error(), "report table") || !strings.Contains(pe.Error(), "nowhere") {
		t.Errorf("table: %v, want 1146 naming report table", pe)
	}
	if err := prepared["write"].Err; err == nil || !strings.Contains(err.Error(), "report write") || !strings.Contains(err.Error(), "one SELECT") {
		t.Errorf("write: %v, want refused: a report is one SELECT", err)
	}
	if err := prepared["blob"].Err; err == nil || !strings.Contains(err.Error(), `column "raw"`) || len(prepared["blob"].Columns) != 2 {
		t.Errorf("blob: %v %v, want the column raw named", err, prepared["blob"].Columns)
	}
	if n := mysqlCount(t, db, "SELECT count(*) FROM sales"); n != 5 {
		t.Errorf("%d sales rows after Prepare, want 5", n)
	}
}

// TestMySQLSecrets: neither the DSN nor its password is in an error.
func TestMySQLSecrets(t *testing.T) {
	t.Parallel()
	reports := map[string]string{"r": "SELECT 1 AS v, @customer AS c"}
	_, err := NewMySQL(context.Background(), "root:hunter2@tcp(127.0.0.1:3306/x", reports, SQLConfig{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad DSN: %v", err)
	}
	m := newMySQL(t, "root:hunter2@tcp(127.0.0.1:1)/x?timeout=1s", reports, SQLConfig{})
	_, err = m.Query(context.Background(), january("r"))
	providerError(t, err, dashcache.OutcomeTransient)
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}

// TestMySQLQuotedUserVariables: the server reads @'customer', @"customer"
// and @`customer` as the user variable @customer, never bound by the back
// end (unset: NULL, and the report would match nothing): such a report is
// refused at load.
func TestMySQLQuotedUserVariables(t *testing.T) {
	t.Parallel()
	dsn, db := mysqlWarehouse(t)
	conn, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(t.Context(), "SET @customer = 'acme'"); err != nil {
		t.Fatal(err)
	}
	var single, double, back string
	if err := conn.QueryRowContext(t.Context(), "SELECT @'customer', @\"customer\", @`customer`").Scan(&single, &double, &back); err != nil {
		t.Fatal(err)
	}
	if single != "acme" || double != "acme" || back != "acme" {
		t.Errorf("the server read the quoted variables as %q, %q, %q; want @customer's acme", single, double, back)
	}
	_, err = NewMySQL(t.Context(), dsn, map[string]string{"r": "SELECT day FROM sales WHERE customer = @customer AND day >= @'from'"}, SQLConfig{})
	if err == nil || !strings.Contains(err.Error(), "report r: query: has a quoted user variable @'from'") {
		t.Errorf("NewMySQL: %v, want the quoted variable refused", err)
	}
}

// mysqlLogRecorder records what the MySQL driver logs.
type mysqlLogRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *mysqlLogRecorder) Print(v ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprint(v...))
}

func (r *mysqlLogRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := r.lines
	r.lines = nil
	return lines
}

// TestMySQLDriverLogsNothing: a server that hangs up in the handshake
// makes the driver log (to stderr, by default) on a pool of its own
// defaults, and not on the back end's, whose failure comes back as the
// call's error alone. Not parallel: it sets the driver's default logger.
func TestMySQLDriverLogsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted sync.WaitGroup
	accepted.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	t.Cleanup(func() { ln.Close(); accepted.Wait() })
	rec := &mysqlLogRecorder{}
	if err := mysql.SetLogger(rec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mysql.SetLogger(log.New(os.Stderr, "[mysql] ", log.Ldate|log.Ltime)) })
	dsn := "root@tcp(" + ln.Addr().String() + ")/x?timeout=1s"

	plain, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.PingContext(t.Context()); err == nil {
		t.Fatal("a server that hangs up answered a ping")
	}
	if lines := rec.take(); len(lines) == 0 {
		t.Fatal("the driver's own pool logged nothing: this test no longer shows what the back end silences")
	}

	m := newMySQL(t, dsn, map[string]string{"r": "SELECT @customer AS c"}, SQLConfig{Timeout: time.Second})
	if _, err := m.Query(t.Context(), january("r")); err == nil {
		t.Fatal("a server that hangs up answered a query")
	}
	if lines := rec.take(); len(lines) != 0 {
		t.Errorf("the back end's connections logged through the driver: %q", lines)
	}
}
