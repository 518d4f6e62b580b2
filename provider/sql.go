package provider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
)

// What the SQL back ends (Postgres, MySQL) share: their config, the shape
// of a call (sqlBackend.call) and of its answer (rowsJSON), how a failure
// is told, and what Prepare finds. What is the driver's stays in
// postgres.go and mysql.go.

// SQLConfig configures a SQL back end (Postgres, MySQL).
type SQLConfig struct {
	// MaxRows bounds a report's rows: an answer with more is invalid
	// (dashcache.OutcomeInvalid). Default DefaultMaxRows.
	MaxRows int
	// Timeout bounds a report's statement on the server (PostgreSQL's
	// statement_timeout, MariaDB's max_statement_time, MySQL's
	// max_execution_time); the whole call, connecting included, gets 2s
	// more, so that the server's own timeout, which says what it is
	// (SQLSTATE 57014, error 1969 or 3024), comes first. Default 60s
	// (DefaultTimeout).
	Timeout time.Duration
	// MaxBytes bounds a report's JSON: a larger answer is invalid, as the
	// http back end's larger than DASHCACHE_PROVIDER_MAX_BYTES is.
	// Default 16 MiB (DefaultMaxBodyBytes).
	MaxBytes int64
	// MaxConns bounds the pool's connections, unless a PostgreSQL DSN
	// names its own pool_max_conns: a worker needs one per task it runs at
	// once. Default: the driver's (pgxpool: the larger of 4 and the number
	// of CPUs; database/sql: no bound).
	MaxConns int
}

// callGrace is how much longer than SQLConfig.Timeout a call may take:
// time to connect, begin and set the timeout before the statement starts,
// and for the server's timeout error to arrive.
const callGrace = 2 * time.Second

// cancelDelay is how long a call whose context has ended waits for the
// server to confirm the cancellation of its statement before it closes the
// connection.
const cancelDelay = time.Second

// withDefaults returns cfg with the defaults of its zero fields.
func (cfg SQLConfig) withDefaults() SQLConfig {
	cfg.MaxRows = cmp.Or(cfg.MaxRows, DefaultMaxRows)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, DefaultMaxBodyBytes)
	return cfg
}

// validate reports every problem of cfg and of reports, the SQL of a back
// end of type typ by report name.
func (cfg SQLConfig) validate(reports map[string]string, typ string) error {
	var errs []error
	if cfg.MaxRows < 0 {
		errs = append(errs, fmt.Errorf("provider: MaxRows must not be negative, got %d", cfg.MaxRows))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("provider: Timeout must not be negative, got %s", cfg.Timeout))
	}
	if cfg.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("provider: MaxBytes must not be negative, got %d", cfg.MaxBytes))
	}
	if len(reports) == 0 {
		errs = append(errs, errors.New("provider: a SQL back end needs at least one report"))
	}
	for _, name := range sortedKeys(reports) {
		if err := checkReportName(name); err != nil {
			errs = append(errs, fmt.Errorf("provider: %w", err))
		}
		if err := checkSQL(reports[name], typ); err != nil {
			errs = append(errs, fmt.Errorf("provider: report %s: query: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// sqlBackend is a SQL back end but for its driver: its reports by name,
// each held as its driver wants the query (Q), its config, the DSN and its
// password (secrets, cut from every error), and how its driver's errors
// are told (classify: the outcome, and the server's code if it sent one).
type sqlBackend[Q any] struct {
	typ      string // TypePostgres or TypeMySQL
	reports  map[string]Q
	cfg      SQLConfig
	secrets  []string
	classify func(error) (dashcache.ProviderOutcome, string)
}

// call answers k with run, which runs the query of report k.Report. The
// call is bounded by cfg.Timeout and callGrace; run's stop ends the call's
// context, which the driver's code turns into stopping the statement on
// the server, as it does when ctx ends (the worker lost its lock). A
// failure is a *dashcache.ProviderError that names the report.
func (b *sqlBackend[Q]) call(ctx context.Context, k dashcache.ReportKey, run func(ctx context.Context, stop context.CancelFunc, q Q, k dashcache.ReportKey) ([]byte, error)) ([]byte, error) {
	q, ok := b.reports[k.Report]
	if !ok {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent,
			Err: fmt.Errorf("report %q is not one of this %s back end's reports (%s)", k.Report, b.typ, strings.Join(sortedKeys(b.reports), ", "))}
	}
	callCtx, cancel := context.WithTimeout(ctx, b.cfg.Timeout+callGrace)
	defer cancel()
	data, err := run(callCtx, cancel, q, k)
	if err != nil {
		return nil, b.failure(ctx, callCtx, "report "+k.Report, err)
	}
	return data, nil
}

// textRows are the rows of a result, each value as the server's text (nil
// for NULL), which jsonColumn's writers read; Text's values are valid until
// the next Next.
type textRows interface {
	Next() bool
	Text() ([][]byte, error)
	Err() error
}

// rowsJSON reads rows into a JSON array. When the answer grows past a
// limit, or a value cannot be JSON, it stops the statement on the server
// (stop), rather than reading the rest of its rows for nothing.
func (b *sqlBackend[Q]) rowsJSON(rows textRows, cols []jsonColumn, stop context.CancelFunc) ([]byte, error) {
	out := append(make([]byte, 0, 4096), '[')
	n := 0
	for rows.Next() {
		if n++; n > b.cfg.MaxRows {
			stop()
			return nil, invalidAnswer(fmt.Errorf("the query returned more than %d rows (max_rows)", b.cfg.MaxRows))
		}
		values, err := rows.Text()
		if err != nil {
			return nil, err
		}
		if n > 1 {
			out = append(out, ',')
		}
		if out, err = appendRow(out, cols, values); err != nil {
			stop()
			return nil, invalidAnswer(err)
		}
		if int64(len(out)) >= b.cfg.MaxBytes { // ']' is still to come
			stop()
			return nil, invalidAnswer(fmt.Errorf("the answer is larger than %d bytes", b.cfg.MaxBytes))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return append(out, ']'), nil
}

// invalidAnswer is an answer that cannot be stored.
func invalidAnswer(err error) *dashcache.ProviderError {
	return &dashcache.ProviderError{Outcome: dashcache.OutcomeInvalid, Err: err}
}

// failure turns a failed call into a *dashcache.ProviderError classified
// by classify, whose text starts with what (the report, say) and says
// whether the caller gave up or the call ran out of time, and which
// contains none of the secrets. parent is the caller's context, call the
// call's own.
func (b *sqlBackend[Q]) failure(parent, call context.Context, what string, err error) error {
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) {
		outcome, code := b.classify(err)
		pe = &dashcache.ProviderError{Outcome: outcome, Code: code, Err: err}
	}
	switch {
	case parent.Err() != nil:
		// The caller gave up (the worker lost its lock, say): the
		// statement was cancelled on the server.
		err = fmt.Errorf("%s: the call was abandoned (%w): %w", what, context.Cause(parent), pe.Err)
	case errors.Is(call.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("%s: no answer within %s: %w", what, b.cfg.Timeout+callGrace, pe.Err)
	default:
		err = fmt.Errorf("%s: %w", what, pe.Err)
	}
	out := *pe
	out.Err = redact(err, b.secrets)
	return &out
}

// prepareEach prepares each report with prepare, in the order of their
// names, and returns what it found of each. parent is the caller's
// context, ctx the call's.
func (b *sqlBackend[Q]) prepareEach(parent, ctx context.Context, prepare func(context.Context, Q) ([]Column, error)) map[string]Prepared {
	out := make(map[string]Prepared, len(b.reports))
	for _, name := range sortedKeys(b.reports) {
		cols, err := prepare(ctx, b.reports[name])
		if err != nil {
			err = b.failure(parent, ctx, "report "+name, err)
		}
		out[name] = Prepared{Columns: cols, Err: err}
	}
	return out
}

// Column is a column of a report's answer, as Prepare finds it.
type Column struct {
	// Name is the column's name: its key in each row's object.
	Name string
	// Type is its type as the server names it (PostgreSQL's format_type;
	// MySQL's column type, in lower case).
	Type string
}

// Prepared is what a SQL back end's Prepare found of one report.
type Prepared struct {
	// Columns are the report's columns, those without a JSON form
	// included; none where it could not be prepared.
	Columns []Column
	// Err says why the report is not ready, naming it: a
	// *dashcache.ProviderError with the server's code, as Query's, or one
	// that names each column Query cannot turn into JSON, with its type.
	Err error
}

// redacted is an error whose text has the secrets cut out; it unwraps to
// the error, so that errors.As still finds a *pgconn.PgError.
type redacted struct {
	err     error
	secrets []string
}

func (e *redacted) Error() string {
	msg := e.err.Error()
	for _, s := range e.secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return msg
}

func (e *redacted) Unwrap() error { return e.err }

// redact returns err with the secrets cut out of its text. The longest
// secret goes first, so that a password inside the DSN leaves no piece of
// the DSN behind.
func redact(err error, secrets []string) error {
	s := slices.Clone(secrets)
	slices.SortFunc(s, func(a, b string) int { return len(b) - len(a) })
	return &redacted{err: err, secrets: s}
}
