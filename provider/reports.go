package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
)

// Reports answers every report from the source of its back end: the default
// report ("") from the BI platform of DASHCACHE_PROVIDER_URL (or the
// simulator), and each report of the catalogue from its back end's. It is a
// Source; its customers are the default source's.
type Reports struct {
	def      Source                            // nil: no default report
	cat      *Catalogue                        // nil: no named reports
	backends map[string]dashcache.ReportSource // by name
}

// Limits are what every back end's calls are bounded by.
type Limits struct {
	// Timeout bounds one call. Default DefaultTimeout.
	Timeout time.Duration
	// MaxBodyBytes bounds an answer. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Concurrency is how many calls a process makes at once: a SQL back
	// end's pool has as many connections. Default: its driver's.
	Concurrency int
}

// OpenReports opens the back ends of cat (nil: none, only the default
// report), reading their secrets through getenv, with def answering the
// default report and listing the customers (nil: there is no default
// report, and no list). An error names the back end. Close closes them.
func OpenReports(ctx context.Context, cat *Catalogue, getenv func(string) string, def Source, limits Limits) (*Reports, error) {
	r := &Reports{def: def, cat: cat, backends: map[string]dashcache.ReportSource{}}
	if cat == nil {
		return r, nil
	}
	for _, name := range sortedKeys(cat.Backends) {
		src, err := openBackend(ctx, cat, name, getenv, limits)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("back end %s: %w", name, err)
		}
		r.backends[name] = src
	}
	return r, nil
}

// secretFields name, by back end type, the catalogue's field that names a
// secret's variable.
var secretFields = map[string]string{TypePostgres: "dsn_env", TypeMySQL: "dsn_env", TypeHTTP: "token_env", TypeCube: "secret_env", TypeMetabase: "api_key_env"}

// openBackend opens the back end name of cat.
func openBackend(ctx context.Context, cat *Catalogue, name string, getenv func(string) string, limits Limits) (dashcache.ReportSource, error) {
	b := cat.Backends[name]
	secret := func(env string) (string, error) {
		v := getenv(env)
		if v == "" {
			return "", fmt.Errorf("the environment variable %s (%s) is not set", env, secretFields[b.Type])
		}
		return v, nil
	}
	switch b.Type {
	case TypeHTTP:
		token := ""
		if b.TokenEnv != "" {
			var err error
			if token, err = secret(b.TokenEnv); err != nil {
				return nil, err
			}
		}
		return NewClient(ClientConfig{BaseURL: b.URL, Token: token, Timeout: limits.Timeout, MaxBodyBytes: limits.MaxBodyBytes,
			URLSetting: catalogueURLSetting})
	case TypePostgres, TypeMySQL:
		dsn, err := secret(b.DSNEnv)
		if err != nil {
			return nil, err
		}
		cfg := SQLConfig{MaxRows: b.MaxRows, Timeout: limits.Timeout, MaxBytes: limits.MaxBodyBytes, MaxConns: limits.Concurrency}
		if b.Type == TypeMySQL {
			return NewMySQL(ctx, dsn, reportsOf(cat, name, query), cfg)
		}
		return NewPostgres(ctx, dsn, reportsOf(cat, name, query), cfg)
	case TypeCube:
		key, err := secret(b.SecretEnv)
		if err != nil {
			return nil, err
		}
		return NewCube(CubeConfig{URL: b.URL, Secret: key, Reports: reportsOf(cat, name, query), Timeout: limits.Timeout, MaxBodyBytes: limits.MaxBodyBytes})
	case TypeMetabase:
		key, err := secret(b.APIKeyEnv)
		if err != nil {
			return nil, err
		}
		reports := reportsOf(cat, name, func(r Report) MetabaseReport {
			return MetabaseReport{Card: r.Card, CustomerParameter: r.CustomerParameter, RangeParameter: r.RangeParameter}
		})
		return NewMetabase(MetabaseConfig{URL: b.URL, APIKey: key, Reports: reports, Timeout: limits.Timeout, MaxBodyBytes: limits.MaxBodyBytes})
	}
	return nil, fmt.Errorf("type %q has no client", b.Type) // ParseCatalogue refuses it first
}

// reportsOf returns the reports of cat that back end answers, by name, each
// as of makes its back end's form of it from its catalogue entry.
func reportsOf[V any](cat *Catalogue, backend string, of func(Report) V) map[string]V {
	reports := map[string]V{}
	for name, spec := range cat.Reports {
		if spec.Backend == backend {
			reports[name] = of(spec)
		}
	}
	return reports
}

// query is a SQL or Cube report: its query.
func query(r Report) string { return r.Query }

// Close closes the back ends that hold connections.
func (r *Reports) Close() {
	for _, src := range r.backends {
		if c, ok := src.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// Query answers k from its report's back end; a report the catalogue does
// not name, or the default report when there is none, is a permanent
// failure.
func (r *Reports) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	if k.Report == "" && r.def != nil {
		return r.def.Query(ctx, k)
	}
	if r.cat != nil {
		if spec, ok := r.cat.Reports[k.Report]; ok {
			return r.backends[spec.Backend].Query(ctx, k)
		}
	}
	err := fmt.Errorf("no report named %q in the report catalogue", k.Report)
	if k.Report == "" {
		err = errors.New("there is no default report: DASHCACHE_PROVIDER_URL is not set, and the report catalogue names the reports")
	}
	return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Err: err}
}

// Customers lists the default source's customers; ErrNoCustomerList, as a
// permanent error, without one.
func (r *Reports) Customers(ctx context.Context) ([]string, error) {
	if r.def == nil {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Err: ErrNoCustomerList}
	}
	return r.def.Customers(ctx)
}

// Checked is what Check found of one report.
type Checked struct {
	Report, Backend string
	// Detail is what was found: the report's columns (a SQL back end), its
	// card's tags (Metabase), or the request that proved the back end's
	// url and secret (Cube, http); or what is wrong.
	Detail string
	OK     bool
}

// reportCheck is what a back end's check found of one report: what it is,
// or why it is not ready.
type reportCheck struct {
	detail string
	err    error
}

// checker is a back end that checks reports, by name, without running
// them: what it found of each, or why it could check none.
type checker interface {
	check(ctx context.Context, reports []string) (map[string]reportCheck, error)
}

// preparer is a back end that can check its reports on the server without
// running them (a SQL back end): what it found of each report, or why it
// could check none.
type preparer interface {
	Prepare(ctx context.Context) (map[string]Prepared, error)
}

// Every back end type can be checked.
var (
	_ preparer = (*Postgres)(nil)
	_ preparer = (*MySQL)(nil)
	_ checker  = (*Cube)(nil)
	_ checker  = (*Metabase)(nil)
	_ checker  = (*Client)(nil)
)

// Check checks every report of the catalogue without running it, in the
// order of their names, each as its back end's type allows: a SQL back
// end prepares its reports on the server (syntax, tables, columns and
// their types); Metabase's cards are read and checked as before a query
// (the card exists, its customer tag is a required Text or Number
// variable, its range tag a Field Filter); Cube must take a token signed
// with the secret (GET /cubejs-api/v1/meta); an http back end must list
// its customers with the token (GET /customers).
func (r *Reports) Check(ctx context.Context) []Checked {
	if r.cat == nil {
		return nil // no named reports
	}
	byBackend := map[string][]string{} // report names, sorted
	for _, report := range sortedKeys(r.cat.Reports) {
		name := r.cat.Reports[report].Backend
		byBackend[name] = append(byBackend[name], report)
	}
	failed := map[string]error{}      // by back end: why it answers none of its reports
	found := map[string]reportCheck{} // by report
	for name, src := range r.backends {
		var reports map[string]reportCheck
		reports, failed[name] = checkSource(ctx, src, byBackend[name])
		maps.Copy(found, reports)
	}
	var out []Checked
	for _, report := range sortedKeys(r.cat.Reports) {
		name := r.cat.Reports[report].Backend
		c := Checked{Report: report, Backend: name + " (" + r.cat.Backends[name].Type + ")"}
		switch f, ok := found[report]; {
		case failed[name] != nil:
			c.Detail = failed[name].Error()
		case !ok:
			c.Detail = "its back end did not check it"
		case f.err != nil:
			c.Detail = f.err.Error()
		default:
			c.Detail, c.OK = f.detail, true
		}
		out = append(out, c)
	}
	return out
}

// checkSource checks reports, the names of the reports src answers, as
// Check says.
func checkSource(ctx context.Context, src dashcache.ReportSource, reports []string) (map[string]reportCheck, error) {
	switch src := src.(type) {
	case preparer:
		prepared, err := src.Prepare(ctx)
		out := make(map[string]reportCheck, len(prepared))
		for name, p := range prepared {
			out[name] = reportCheck{detail: describe(p.Columns), err: p.Err}
		}
		return out, err
	case checker:
		return src.check(ctx, reports)
	}
	return nil, fmt.Errorf("a back end of type %T cannot be checked", src)
}

// sameFor is the same check of every report of reports: what one request
// found of the back end that answers them all.
func sameFor(reports []string, detail string) map[string]reportCheck {
	out := make(map[string]reportCheck, len(reports))
	for _, name := range reports {
		out[name] = reportCheck{detail: detail}
	}
	return out
}

// describe lists a report's columns: "day date, revenue numeric".
func describe(cols []Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.Name + " " + c.Type
	}
	return strings.Join(parts, ", ")
}
