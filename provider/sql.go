package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
)

// What the SQL back ends (Postgres, MySQL) share.

// SQLConfig configures a SQL back end (Postgres).
type SQLConfig struct {
	// MaxRows bounds a report's rows: an answer with more is invalid
	// (dashcache.OutcomeInvalid). Default DefaultMaxRows.
	MaxRows int
	// Timeout bounds a report's statement on the server (its
	// statement_timeout); the whole call, connecting included, gets 2s
	// more, so that the server's own timeout, which says what it is
	// (SQLSTATE 57014), comes first. Default 60s (DefaultTimeout).
	Timeout time.Duration
	// MaxBytes bounds a report's JSON: a larger answer is invalid, as the
	// http back end's larger than DASHCACHE_PROVIDER_MAX_BYTES is.
	// Default 16 MiB (DefaultMaxBodyBytes).
	MaxBytes int64
	// MaxConns bounds the pool's connections, unless the DSN names its
	// own pool_max_conns: a worker needs one per task it runs at once.
	// Default: pgxpool's (the larger of 4 and the number of CPUs).
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
		if err := dashcache.CheckReportName(name); err != nil {
			errs = append(errs, fmt.Errorf("provider: report %q: the name: a report's name is 1-%d characters of a-z 0-9 _ -", name, dashcache.MaxReportNameLen))
		}
		if err := checkSQL(reports[name], typ); err != nil {
			errs = append(errs, fmt.Errorf("provider: report %s: query: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// invalidAnswer is an answer that cannot be stored.
func invalidAnswer(err error) *dashcache.ProviderError {
	return &dashcache.ProviderError{Outcome: dashcache.OutcomeInvalid, Err: err}
}

// sqlFailure turns a SQL back end's failed call into a
// *dashcache.ProviderError classified by classify (outcome, and the
// server's code), whose text starts with what and says whether the caller
// gave up or the call ran out of time, and which contains none of secrets.
func sqlFailure(parent, call context.Context, what string, err error, classify func(error) (dashcache.ProviderOutcome, string), timeout time.Duration, secrets []string) error {
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) {
		outcome, code := classify(err)
		pe = &dashcache.ProviderError{Outcome: outcome, Code: code, Err: err}
	}
	switch {
	case parent.Err() != nil:
		// The caller gave up (the worker lost its lock, say): the
		// statement was cancelled on the server.
		err = fmt.Errorf("%s: the call was abandoned (%w): %w", what, context.Cause(parent), pe.Err)
	case errors.Is(call.Err(), context.DeadlineExceeded):
		err = fmt.Errorf("%s: no answer within %s: %w", what, timeout+callGrace, pe.Err)
	default:
		err = fmt.Errorf("%s: %w", what, pe.Err)
	}
	out := *pe
	out.Err = redact(err, secrets)
	return &out
}

// Column is a column of a report's answer, as Prepare finds it.
type Column struct {
	// Name is the column's name: its key in each row's object.
	Name string
	// Type is its PostgreSQL type, as format_type names it.
	Type string
}

// Prepared is what a SQL back end's Prepare found of one report.
type Prepared struct {
	// Columns are the report's columns, those without a JSON form
	// included; none where it could not be prepared, or where the back end
	// cannot tell (MySQL).
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
