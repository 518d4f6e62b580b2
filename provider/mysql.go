package provider

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/dashcache/dashcache"
)

// MySQL answers the named reports of the catalogue from a MySQL or MariaDB
// database: each report is one SQL query whose @customer, @from and @to
// become ? placeholders, bound as values by the server (server-side
// prepared statements; the driver never splices a value into the SQL). It
// is safe for concurrent use.
//
// Each call runs in a read-only transaction (START TRANSACTION READ ONLY)
// that is always rolled back, under the server's statement timeout
// (MariaDB's max_statement_time, or MySQL's max_execution_time, which
// bounds SELECTs only), and a call whose context ends has its statement
// killed on the server (KILL QUERY from another connection: the driver
// only closes its socket, and the server would run the statement on). The
// answer is the same JSON as Postgres's; see Query for the types.
type MySQL struct {
	sqlBackend[mysqlQuery]
	db     *sql.DB
	killer *sql.DB // one connection for KILL QUERY, apart from the pool

	// timeoutVar is the server's statement timeout setting, found on the
	// first call: "max_statement_time" (MariaDB, seconds) or
	// "max_execution_time" (MySQL, milliseconds).
	timeoutVar atomic.Pointer[string]
	closeOnce  sync.Once
}

// NewMySQL returns a MySQL back end on the database of dsn
// (user:password@tcp(host:3306)/database?param=value, the driver's format)
// answering reports, a map from report name to its SQL, checked as
// NewPostgres checks them, but read by MySQL's lexical rules (mysqlParams).
// Whatever the DSN says, values come back as the server's text
// (parseTime=false), in UTC (loc=UTC and the session's time_zone
// '+00:00'), in utf8mb4, the server reads the SQL under mysqlSQLMode, and
// parameters are bound by the server (interpolateParams=false).
// cfg.MaxConns bounds the pool's open connections. It does not connect:
// the first call, or Prepare, does. Its errors never contain the DSN or its
// password.
func NewMySQL(ctx context.Context, dsn string, reports map[string]string, cfg SQLConfig) (*MySQL, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(reports, TypeMySQL); err != nil {
		return nil, err
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		// The driver's parse errors may quote the DSN: say nothing of it.
		return nil, errors.New("provider: mysql: the connection string cannot be parsed; " +
			"it is user:password@tcp(host:3306)/database?param=value")
	}
	secrets := []string{dsn, mc.Passwd}
	mc.ParseTime = false
	mc.InterpolateParams = false
	mc.Loc = time.UTC
	mc.MultiStatements = false
	// The driver prints what it meets on a connection (a bad packet, a
	// dropped idle connection) with its own logger, to stderr by default:
	// lines outside zerolog, in another format, that log pipelines would
	// take for a crash. Every such fault also comes back as the error of
	// the call it breaks, which the back end classifies and the worker
	// logs; so this back end's connections print nothing. The Config's
	// logger, rather than mysql.SetLogger, keeps it to them: no
	// process-wide state to set once, and the driver still logs for any
	// other user of it in the process.
	mc.Logger = &mysql.NopLogger{}
	if err := mc.Apply(mysql.Charset("utf8mb4", "")); err != nil {
		return nil, redact(fmt.Errorf("provider: mysql: %w", err), secrets)
	}
	params := map[string]string{}
	for name, value := range mc.Params {
		// Session variables the DSN sets; the pinned ones are ours.
		switch strings.ToLower(name) {
		case "time_zone", "max_statement_time", "max_execution_time", "sql_mode":
			continue
		}
		params[name] = value
	}
	params["time_zone"] = "'+00:00'"
	params["sql_mode"] = mysqlSQLMode
	mc.Params = params
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, redact(fmt.Errorf("provider: mysql: %w", err), secrets)
	}
	db := sql.OpenDB(connector)
	if cfg.MaxConns > 0 {
		db.SetMaxOpenConns(cfg.MaxConns)
		db.SetMaxIdleConns(cfg.MaxConns)
	}
	killer := sql.OpenDB(connector)
	killer.SetMaxOpenConns(1)
	queries := make(map[string]mysqlQuery, len(reports))
	for name, query := range reports {
		if queries[name], err = newMySQLQuery(query); err != nil {
			return nil, fmt.Errorf("provider: report %s: query: %w", name, err) // validate refused it first
		}
	}
	return &MySQL{
		sqlBackend: sqlBackend[mysqlQuery]{typ: TypeMySQL, reports: queries, cfg: cfg, secrets: secrets, classify: classifyMySQL},
		db:         db,
		killer:     killer,
	}, nil
}

// Close closes the pool's connections. Calls in flight fail.
func (m *MySQL) Close() {
	m.closeOnce.Do(func() {
		_ = m.db.Close()
		_ = m.killer.Close()
	})
}

// mysqlSQLMode is the sql_mode of every session: the modes that MySQL's
// and MariaDB's defaults share. Above all it is pinned without
// NO_BACKSLASH_ESCAPES and ANSI_QUOTES, which a server's or a DSN's mode
// may have: with them the server would read a backslash in a string as a
// backslash, and "..." as a name, and so find code (an OR, a comment) where
// mysqlParams found a string, or bind @customer where mysqlParams found
// none. It also keeps modes that change answers (PAD_CHAR_TO_FULL_LENGTH,
// PIPES_AS_CONCAT) from the reports.
const mysqlSQLMode = "'STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"

// Query runs the SQL of report k.Report with @customer bound to k.Customer
// and @from and @to to k.From and k.To (as 'YYYY-MM-DD' text, which the
// server converts to the type it compares them with), and returns its rows
// as a JSON array of objects, keyed by column name in the query's column
// order ([] for no rows).
//
// Values become JSON by their column's type (as the driver names it):
// TINYINT, SMALLINT, MEDIUMINT, INT, BIGINT (signed or not), YEAR and
// DECIMAL are numbers with every digit the server sent; FLOAT and DOUBLE
// numbers (the shortest text that reads back as the same float); BOOL,
// which MySQL keeps as TINYINT(1), is the number 0 or 1; DATE
// "YYYY-MM-DD"; DATETIME and TIMESTAMP (in the session's time zone, UTC)
// RFC 3339 in UTC, fractional seconds kept; CHAR, VARCHAR, the TEXTs, ENUM
// and SET strings; MySQL's JSON the JSON itself (MariaDB's JSON is a
// LONGTEXT, so it arrives as a string); NULL null. A column of any other
// type (BLOB, BINARY, VARBINARY, BIT, TIME, GEOMETRY...) is a permanent
// error that names it: cast it (CAST(x AS CHAR)). A zero date is invalid.
//
// A failure is a *dashcache.ProviderError whose Code is the server's error
// number, if it sent one: transient when the server could not answer now
// (connection, lock wait timeout 1205, deadlock 1213, too many connections
// 1040, statement timeout 1969 or 3024, interrupted 1317, server gone 2006
// or 2013), permanent when the query is wrong (an unknown report, syntax
// 1064, unknown column 1054, no such table 1146, access denied 1142, 1044
// or 1045, a write in the read-only transaction 1792), invalid when the
// answer cannot be stored (more than MaxRows rows, larger than MaxBytes, a
// value JSON cannot hold).
func (m *MySQL) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	return m.call(ctx, k, m.query)
}

// conn returns a connection of the pool with the statement timeout set,
// and a function that ends the call on it: it stops the watch that kills
// the connection's statement when ctx ends, and returns it to the pool.
func (m *MySQL) conn(ctx context.Context) (*sql.Conn, func(), error) {
	conn, err := m.db.Conn(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting: %w", err)
	}
	var id int64
	if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("connecting: %w", err)
	}
	if err := m.setTimeout(ctx, conn); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("setting the statement timeout: %w", err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-done:
		case <-ctx.Done():
			m.kill(id)
		}
	})
	return conn, func() {
		close(done)
		wg.Wait()
		conn.Close()
	}, nil
}

// setTimeout sets the session's statement timeout: MariaDB's
// max_statement_time (seconds) or, where the server has no such variable
// (1193), MySQL's max_execution_time (milliseconds).
func (m *MySQL) setTimeout(ctx context.Context, conn *sql.Conn) error {
	ms := max(m.cfg.Timeout.Milliseconds(), 1)
	set := func(name string) error {
		value := strconv.FormatInt(ms, 10)
		if name == "max_statement_time" {
			value = strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64)
		}
		_, err := conn.ExecContext(ctx, "SET SESSION "+name+" = "+value)
		return err
	}
	if name := m.timeoutVar.Load(); name != nil {
		return set(*name)
	}
	name := "max_statement_time"
	err := set(name)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1193 { // unknown system variable: MySQL
		name = "max_execution_time"
		err = set(name)
	}
	if err == nil {
		m.timeoutVar.Store(&name)
	}
	return err
}

// kill stops the statement of connection id on the server, from a
// connection of its own: the driver, on a context that ends, closes the
// socket, and the server would run the statement on until it next writes.
func (m *MySQL) kill(id int64) {
	ctx, cancel := context.WithTimeout(context.Background(), cancelDelay+callGrace)
	defer cancel()
	_, _ = m.killer.ExecContext(ctx, "KILL QUERY "+strconv.FormatInt(id, 10))
}

// query runs one report's SQL in a read-only transaction; stop ends ctx,
// which kills the statement on the server.
func (m *MySQL) query(ctx context.Context, stop context.CancelFunc, query mysqlQuery, k dashcache.ReportKey) ([]byte, error) {
	conn, release, err := m.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("beginning a read-only transaction: %w", err)
	}
	// Rolled back, never committed: nothing is to be kept.
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, query.sql, query.args(k)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	cols, err := mysqlColumns(types)
	if err != nil {
		stop()
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Err: err}
	}
	return m.rowsJSON(newSQLTextRows(rows, len(cols)), cols, stop)
}

// sqlTextRows are database/sql's rows as the driver's text (with
// parseTime=false it decodes no value), scanned without a copy.
type sqlTextRows struct {
	*sql.Rows
	dest   []any
	values [][]byte // nil for NULL
}

func newSQLTextRows(rows *sql.Rows, columns int) *sqlTextRows {
	r := &sqlTextRows{Rows: rows, dest: make([]any, columns), values: make([][]byte, columns)}
	for i := range r.values {
		r.dest[i] = (*sql.RawBytes)(&r.values[i])
	}
	return r
}

func (r *sqlTextRows) Text() ([][]byte, error) {
	if err := r.Scan(r.dest...); err != nil {
		return nil, err
	}
	return r.values, nil
}

// mysqlWriters are the writers of the types Query accepts, by the driver's
// name of the column's type (ColumnType.DatabaseTypeName).
var mysqlWriters = map[string]func(dst, text []byte) ([]byte, error){
	"TINYINT": appendExactNumber, "UNSIGNED TINYINT": appendExactNumber,
	"SMALLINT": appendExactNumber, "UNSIGNED SMALLINT": appendExactNumber,
	"MEDIUMINT": appendExactNumber, "UNSIGNED MEDIUMINT": appendExactNumber,
	"INT": appendExactNumber, "UNSIGNED INT": appendExactNumber,
	"BIGINT": appendExactNumber, "UNSIGNED BIGINT": appendExactNumber,
	"YEAR": appendExactNumber, "DECIMAL": appendExactNumber,
	// No NaN or infinity in MySQL: the driver's text of the float is a number.
	"FLOAT": appendExactNumber, "DOUBLE": appendExactNumber,
	"DATE":     appendDate,
	"DATETIME": appendTimestamp, "TIMESTAMP": appendTimestamp,
	"CHAR": appendJSONString, "VARCHAR": appendJSONString,
	"TINYTEXT": appendJSONString, "TEXT": appendJSONString,
	"MEDIUMTEXT": appendJSONString, "LONGTEXT": appendJSONString,
	"ENUM": appendJSONString, "SET": appendJSONString,
	"JSON": appendJSON,
	"NULL": appendJSON, // never called: its only value is NULL
}

// mysqlColumns returns how to write each column of a result as JSON; its
// error is keyColumns'.
func mysqlColumns(types []*sql.ColumnType) ([]jsonColumn, error) {
	cols := make([]jsonColumn, len(types))
	for i, ct := range types {
		typ := ct.DatabaseTypeName()
		cols[i] = jsonColumn{name: ct.Name(), typ: cmp.Or(typ, "unknown"), put: mysqlWriters[typ]}
	}
	return cols, keyColumns(cols, "CAST(%s AS CHAR)")
}

// transientMySQLErrors are the error numbers of a server that cannot
// answer now but may soon.
var transientMySQLErrors = map[uint16]bool{
	1040: true, // too many connections
	1053: true, // server shutdown in progress
	1203: true, // user has too many connections
	1205: true, // lock wait timeout
	1213: true, // deadlock
	1317: true, // query interrupted (KILL QUERY)
	1927: true, // connection killed (MariaDB)
	1969: true, // max_statement_time exceeded (MariaDB)
	3024: true, // max_execution_time exceeded (MySQL)
	2006: true, // server has gone away
	2013: true, // lost connection during query
}

// classifyMySQL returns the outcome of a failed call, and the server's
// error number if it sent one. Errors of the server are permanent unless
// they say it could not answer now; an error without a number (no
// connection, a broken one, driver.ErrBadConn, an ended context) is
// transient.
func classifyMySQL(err error) (dashcache.ProviderOutcome, string) {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return dashcache.OutcomeTransient, ""
	}
	code := strconv.Itoa(int(me.Number))
	if transientMySQLErrors[me.Number] {
		return dashcache.OutcomeTransient, code
	}
	return dashcache.OutcomePermanent, code
}

// Prepare prepares every report's SQL on the server (COM_STMT_PREPARE)
// without running it: the server checks its syntax, tables, columns and
// privileges. It returns what it found of each report, every report of the
// back end included: a report that cannot be prepared has a
// *dashcache.ProviderError with the server's error number, as Query's. Its
// error is the back end's as a whole (no connection): then no report was
// prepared.
//
// The server sends the columns' types in its answer to the prepare, but
// the driver keeps them to itself (database/sql's Stmt has no columns): so
// the columns of a prepared report are read as columns reads them.
func (m *MySQL) Prepare(ctx context.Context) (map[string]Prepared, error) {
	callCtx, cancel := context.WithTimeout(ctx, m.cfg.Timeout+callGrace)
	defer cancel()
	conn, release, err := m.conn(callCtx)
	if err != nil {
		return nil, m.failure(ctx, callCtx, "preparing the reports", err)
	}
	defer release()
	return m.prepareEach(ctx, callCtx, func(ctx context.Context, q mysqlQuery) ([]Column, error) {
		stmt, err := conn.PrepareContext(ctx, q.sql)
		if err != nil {
			return nil, fmt.Errorf("preparing: %w", err)
		}
		_ = stmt.Close()
		return m.columns(ctx, conn, q)
	}), nil
}

// columns returns a report's columns, and an error naming each that Query
// could not turn into JSON. It runs the report inside a query of no rows,
// which the server answers from its plan without reading a row: "LIMIT 0
// ... can be employed to obtain the types of the result columns" (MySQL's
// manual, LIMIT Query Optimization; MariaDB's alike). A constant subquery
// may still be evaluated while the plan is made; the statement timeout
// bounds it, and the transaction is read-only.
func (m *MySQL) columns(ctx context.Context, conn *sql.Conn, q mysqlQuery) ([]Column, error) {
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("beginning a read-only transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// On lines of their own: the report may end in a -- comment.
	zeroRows := "SELECT * FROM (\n" + strings.TrimRight(q.sql, "; \t\r\n") + "\n) AS dashcache_columns LIMIT 0"
	rows, err := tx.QueryContext(ctx, zeroRows, q.args(dashcache.ReportKey{})...)
	if err != nil {
		return nil, fmt.Errorf("reading its columns (SELECT * FROM (the query) LIMIT 0; a report must be one SELECT): %w", err)
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	cols := make([]Column, len(types))
	for i, ct := range types {
		cols[i] = Column{Name: ct.Name(), Type: strings.ToLower(ct.DatabaseTypeName())}
	}
	if _, err := mysqlColumns(types); err != nil {
		return cols, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Err: err}
	}
	return cols, rows.Err()
}
