package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashcache/dashcache"
)

// Postgres answers the named reports of the catalogue from a PostgreSQL
// database: each report is one SQL query, with @customer, @from and @to
// bound as values by the driver. It is safe for concurrent use.
//
// Each call runs in a read-only transaction that is always rolled back,
// under a statement_timeout, and a call whose context ends has its
// statement cancelled on the server. The answer is a JSON array with one
// object per row, keyed by column name in the query's column order; see
// Query for the types it accepts.
type Postgres struct {
	// Each report's SQL as written: pgx rewrites its parameters.
	sqlBackend[string]
	pool *pgxpool.Pool
}

// Session settings every connection starts with, so that the text of the
// values that Query turns into JSON is the same whatever the server's or the
// role's defaults: dates as YYYY-MM-DD, timestamps with zone in UTC, floats
// with every digit they need, UTF-8 text.
var pinnedSettings = map[string]string{
	"TimeZone":           "UTC",
	"DateStyle":          "ISO",
	"client_encoding":    "UTF8",
	"extra_float_digits": "3",
}

// applicationName names dashcache's sessions on the server
// (pg_stat_activity.application_name), unless the DSN names them.
const applicationName = "dashcache"

// NewPostgres returns a Postgres back end on the database of dsn
// (postgres://user:password@host:port/db?sslmode=..., or key=value pairs;
// the pool takes pool_max_conns and the other pgxpool settings from it)
// answering reports, a map from report name to its SQL. It checks every
// report (a name as the catalogue accepts, and SQL that uses @customer and
// no other parameter than @customer, @from and @to) and reports every
// problem at once. It does not connect: the first call, or Prepare, does.
// Its errors never contain the DSN or its password.
func NewPostgres(ctx context.Context, dsn string, reports map[string]string, cfg SQLConfig) (*Postgres, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(reports, TypePostgres); err != nil {
		return nil, err
	}
	// pgx's parse error quotes the DSN with the password masked as best it
	// can ("best effort", says its comment): say nothing of the DSN.
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("provider: postgres: the connection string cannot be parsed; " +
			"it is postgres://user:password@host:port/database?sslmode=... or host=... dbname=... key=value pairs")
	}
	if pc.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		// pgx would splice the values into the SQL text, and the simple
		// protocol runs several statements: a report's "; COMMIT; ..." would
		// end its read-only transaction.
		return nil, errors.New("provider: postgres: default_query_exec_mode=simple_protocol in the connection string: " +
			"reports bind their parameters on the server; behind PgBouncer use exec or describe_exec")
	}
	secrets := []string{dsn, pc.ConnConfig.Password}
	if cfg.MaxConns > 0 && !strings.Contains(dsn, "pool_max_conns") {
		pc.MaxConns = int32(cfg.MaxConns)
	}

	params := pc.ConnConfig.RuntimeParams
	for name := range params {
		// PostgreSQL's setting names are case-insensitive: a DSN's
		// timezone=... must not override the pinned TimeZone.
		for pinned := range pinnedSettings {
			if strings.EqualFold(name, pinned) {
				delete(params, name)
			}
		}
	}
	for name, value := range pinnedSettings {
		params[name] = value
	}
	if params["application_name"] == "" {
		params["application_name"] = applicationName
	}
	// pgx's default, on a context that ends, only closes the socket: the
	// server runs the statement on until it next writes to the client. A
	// cancel request stops it at once; the socket is closed too if the
	// server has not answered within cancelDelay.
	pc.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, CancelRequestDelay: 0, DeadlineDelay: cancelDelay}
	}

	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, redact(fmt.Errorf("provider: postgres: %w", err), secrets)
	}
	return &Postgres{
		sqlBackend: sqlBackend[string]{typ: TypePostgres, reports: maps.Clone(reports), cfg: cfg, secrets: secrets, classify: classify},
		pool:       pool,
	}, nil
}

// Close closes the pool's connections. Calls in flight fail.
func (p *Postgres) Close() { p.pool.Close() }

// Query runs the SQL of report k.Report with @customer bound to k.Customer
// and @from and @to to k.From and k.To (as 'YYYY-MM-DD' text, which the
// server casts to the type the query compares them with), and returns its
// rows as a JSON array of objects, keyed by column name in the query's
// column order ([] for no rows).
//
// Values become JSON by their column's type: int2, int4, int8, oid and
// numeric are numbers with every digit PostgreSQL prints (a numeric NaN or
// Infinity is an error); float4 and float8 numbers, NaN and ±Infinity null;
// bool true or false; date "YYYY-MM-DD"; timestamptz and timestamp (read as
// UTC) RFC 3339 in UTC, fractional seconds kept; text, varchar, bpchar, name
// and uuid strings; json and jsonb the JSON itself; NULL null. A column of
// any other type is a permanent error that names it: cast it (::text).
//
// A failure is a *dashcache.ProviderError whose Code is the SQLSTATE, if
// the server sent one: transient when the server could not answer now
// (connection, timeout, cancellation, serialization failure, deadlock,
// too many connections, server shutdown), permanent when the query is wrong
// (an unknown report, syntax, undefined table, column or function, missing
// privilege, a data exception, a write in the read-only transaction),
// invalid when the answer cannot be stored (more than MaxRows rows, larger
// than MaxBytes, a value JSON cannot hold).
func (p *Postgres) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	return p.call(ctx, k, p.query)
}

// query runs one report's SQL in a read-only transaction; stop ends ctx,
// which cancels the statement on the server.
func (p *Postgres) query(ctx context.Context, stop context.CancelFunc, sql string, k dashcache.ReportKey) ([]byte, error) {
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("beginning a read-only transaction: %w", err)
	}
	// Rolled back, never committed: nothing is to be kept, and a report
	// that changes a session setting (set_config(..., false)) has the
	// change undone with it. The call's context may have ended.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelDelay+callGrace)
		defer cancel()
		_ = tx.Rollback(rctx) // on failure pgx closes the connection, and the pool drops it
	}()
	if _, err := tx.Exec(ctx, "SELECT set_config('statement_timeout', $1, true)", strconv.FormatInt(max(p.cfg.Timeout.Milliseconds(), 1), 10)); err != nil {
		return nil, fmt.Errorf("setting statement_timeout: %w", err)
	}
	// Text results for every column: Query turns PostgreSQL's own text
	// into JSON, and never a value decoded and printed again by Go.
	rows, err := tx.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode}, pgx.NamedArgs{
		"customer": k.Customer,
		"from":     k.From.String(),
		"to":       k.To.String(),
	})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := jsonColumns(rows.FieldDescriptions(), conn.Conn().TypeMap())
	if err != nil {
		stop()
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Err: err}
	}
	return p.rowsJSON(pgxTextRows{rows}, cols, stop)
}

// pgxTextRows are pgx's rows as text: query asks for text results.
type pgxTextRows struct{ pgx.Rows }

func (r pgxTextRows) Text() ([][]byte, error) { return r.RawValues(), nil }

// transientSQLStates are the SQLSTATEs, by class (two characters) or in
// full, of a server that cannot answer now but may soon.
var transientSQLStates = map[string]bool{
	"08":    true, // connection exception
	"53":    true, // insufficient resources: too many connections, out of memory or disk
	"57":    true, // operator intervention: query_canceled (statement_timeout, cancel), shutdowns
	"58":    true, // system error: I/O
	"40001": true, // serialization_failure
	"40P01": true, // deadlock_detected
	"55P03": true, // lock_not_available
}

// classify returns the outcome of a failed call, and its SQLSTATE if the
// server sent one. Errors of the server are permanent unless they say the
// server could not answer now; an error without a SQLSTATE (no connection,
// a broken one, an ended context) is transient.
func classify(err error) (dashcache.ProviderOutcome, string) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return dashcache.OutcomeTransient, ""
	}
	code := pgErr.Code
	switch {
	case transientSQLStates[code], len(code) == 5 && transientSQLStates[code[:2]],
		// A statement pgx had prepared on this connection, whose result
		// types a schema change altered: pgx forgets it, and the next
		// call prepares it again.
		code == "0A000" && pgErr.Message == "cached plan must not change result type":
		return dashcache.OutcomeTransient, code
	default:
		return dashcache.OutcomePermanent, code
	}
}

// Prepare prepares every report's SQL on the server without running it,
// and returns what it found of each report, every report of the back end
// included. Its error is the back end's as a whole (no connection): then no
// report was prepared.
func (p *Postgres) Prepare(ctx context.Context) (map[string]Prepared, error) {
	callCtx, cancel := context.WithTimeout(ctx, p.cfg.Timeout+callGrace)
	defer cancel()
	conn, err := p.pool.Acquire(callCtx)
	if err != nil {
		return nil, p.failure(ctx, callCtx, "preparing the reports", fmt.Errorf("connecting: %w", err))
	}
	defer conn.Release()
	return p.prepareEach(ctx, callCtx, func(ctx context.Context, sql string) ([]Column, error) {
		return p.prepare(ctx, conn.Conn(), sql)
	}), nil
}

// prepare prepares one report's SQL, rewritten as Query's pgx.NamedArgs
// rewrite it, as pgx's unnamed statement.
func (p *Postgres) prepare(ctx context.Context, conn *pgx.Conn, sql string) ([]Column, error) {
	sql, _, err := pgx.NamedArgs{}.RewriteQuery(ctx, conn, sql, nil)
	if err != nil {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Err: err}
	}
	sd, err := conn.Prepare(ctx, "", sql)
	if err != nil {
		return nil, fmt.Errorf("preparing: %w", err)
	}
	oids := make([]uint32, len(sd.Fields))
	mods := make([]int32, len(sd.Fields))
	for i, f := range sd.Fields {
		oids[i], mods[i] = f.DataTypeOID, f.TypeModifier
	}
	var types []string
	if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(format_type(t.oid, nullif(t.mod, -1)) ORDER BY t.n), '{}')
		FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS t(oid, mod, n)`, oids, mods).Scan(&types); err != nil {
		return nil, fmt.Errorf("naming the column types: %w", err)
	}
	cols := make([]Column, len(sd.Fields))
	for i, f := range sd.Fields {
		cols[i] = Column{Name: f.Name, Type: types[i]}
	}
	if _, err := jsonColumns(sd.Fields, conn.TypeMap()); err != nil {
		return cols, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Err: err}
	}
	return cols, nil
}
