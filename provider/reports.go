package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
)

// Reports answers every report from the source of its back end: the default
// report ("") from the BI platform of DASHCACHE_PROVIDER_URL (or the
// simulator), and each report of the catalogue from its back end's. It is a
// Source; its customers are the default source's.
type Reports struct {
	def      Source
	backends map[string]Source // by name
	reports  map[string]string // report name -> back end name
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
// default report. An error names the back end. Close closes them.
func OpenReports(ctx context.Context, cat *Catalogue, getenv func(string) string, def Source, limits Limits) (*Reports, error) {
	r := &Reports{def: def, backends: map[string]Source{}, reports: map[string]string{}}
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
	for name, report := range cat.Reports {
		r.reports[name] = report.Backend
	}
	return r, nil
}

// openBackend opens the back end name of cat.
func openBackend(ctx context.Context, cat *Catalogue, name string, getenv func(string) string, limits Limits) (Source, error) {
	b := cat.Backends[name]
	secret := func(env string) (string, error) {
		v := getenv(env)
		if v == "" {
			return "", fmt.Errorf("the environment variable %s (%s) is not set", env, map[string]string{TypePostgres: "dsn_env", TypeMySQL: "dsn_env", TypeHTTP: "token_env"}[b.Type])
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
		return NewClient(ClientConfig{BaseURL: b.URL, Token: token, Timeout: limits.Timeout, MaxBodyBytes: limits.MaxBodyBytes})
	case TypePostgres, TypeMySQL:
		dsn, err := secret(b.DSNEnv)
		if err != nil {
			return nil, err
		}
		queries := map[string]string{}
		for report, spec := range cat.Reports {
			if spec.Backend == name {
				queries[report] = spec.Query
			}
		}
		cfg := SQLConfig{MaxRows: b.MaxRows, Timeout: limits.Timeout, MaxBytes: limits.MaxBodyBytes, MaxConns: limits.Concurrency}
		if b.Type == TypeMySQL {
			return NewMySQL(ctx, dsn, queries, cfg)
		}
		return NewPostgres(ctx, dsn, queries, cfg)
	}
	return nil, fmt.Errorf("type %q has no client", b.Type) // ParseCatalogue refuses it first
}

// Close closes the back ends that hold connections.
func (r *Reports) Close() {
	for _, src := range r.backends {
		if c, ok := src.(interface{ Close() }); ok {
			c.Close()
		}
	}
}

// Query answers k from its report's back end; a report the catalogue does
// not name is a permanent failure.
func (r *Reports) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	src, ok := r.source(k.Report)
	if !ok {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent,
			Err: fmt.Errorf("no report named %q in the report catalogue", k.Report)}
	}
	return src.Query(ctx, k)
}

// Customers lists the default source's customers.
func (r *Reports) Customers(ctx context.Context) ([]string, error) { return r.def.Customers(ctx) }

// Backend returns the name of the back end that answers a report: "" for
// the default report.
func (r *Reports) Backend(report string) string { return r.reports[report] }

// Names returns the catalogue's report names, sorted.
func (r *Reports) Names() []string { return sortedKeys(r.reports) }

func (r *Reports) source(report string) (Source, bool) {
	if report == "" {
		return r.def, true
	}
	name, ok := r.reports[report]
	if !ok {
		return nil, false
	}
	return r.backends[name], true
}
