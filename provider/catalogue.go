package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dashcache/dashcache/internal/yamlfile"

	"github.com/dashcache/dashcache"
)

// Catalogue is the report catalogue (DASHCACHE_REPORTS_FILE): the BI back
// ends, and the named reports each answers.
//
//	backends:
//	  warehouse: {type: postgres, dsn_env: WAREHOUSE_DSN, rate: 20}
//	reports:
//	  revenue:
//	    backend: warehouse
//	    query: |
//	      SELECT day, sum(amount) AS revenue, count(*) AS orders
//	      FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to
//	      GROUP BY day ORDER BY day
type Catalogue struct {
	// Backends are the back ends by name (1-32 characters of a-z 0-9 _ -).
	Backends map[string]Backend `yaml:"backends"`
	// Reports are the reports by name (1-32 characters of a-z 0-9 _ -).
	Reports map[string]Report `yaml:"reports"`
}

// Back end types.
const (
	TypePostgres = "postgres"
	TypeMySQL    = "mysql"
	TypeCube     = "cube"
	TypeMetabase = "metabase"
	TypeHTTP     = "http"
)

// BackendTypes are the back end types a catalogue may name.
var BackendTypes = []string{TypePostgres, TypeMySQL, TypeCube, TypeMetabase, TypeHTTP}

// Backend is one BI back end of the catalogue. Secrets are never in the
// file: it names the environment variables that hold them.
type Backend struct {
	// Type is one of BackendTypes.
	Type string `yaml:"type"`
	// DSNEnv names the variable that holds a SQL back end's connection
	// string (postgres: postgres://user:pass@host/db; mysql:
	// user:pass@tcp(host:3306)/db).
	DSNEnv string `yaml:"dsn_env"`
	// URL is the base URL of an http back end (the provider contract), of
	// Cube, or of Metabase: absolute http or https, without query,
	// fragment, user or password.
	URL string `yaml:"url"`
	// TokenEnv names the variable that holds an http back end's bearer
	// token, if it wants one.
	TokenEnv string `yaml:"token_env"`
	// SecretEnv names the variable that holds Cube's API secret
	// (CUBEJS_API_SECRET), which signs its tokens.
	SecretEnv string `yaml:"secret_env"`
	// APIKeyEnv names the variable that holds a Metabase API key.
	APIKeyEnv string `yaml:"api_key_env"`
	// Rate and Burst are the fleet's calls per second to it, and how many
	// may go at once; default: DASHCACHE_PROVIDER_RATE and _BURST.
	Rate  int `yaml:"rate"`
	Burst int `yaml:"burst"`
	// MaxRows bounds a SQL report's rows: an answer with more is invalid.
	// Default DefaultMaxRows.
	MaxRows int `yaml:"max_rows"`
}

// DefaultMaxRows is the default of Backend.MaxRows.
const DefaultMaxRows = 100_000

// Report is one named report of the catalogue.
type Report struct {
	// Backend names the back end that answers it.
	Backend string `yaml:"backend"`
	// Query is a SQL back end's query, with the named parameters
	// @customer, @from and @to (dates) bound by the driver; it must use
	// @customer. For Cube, the query of its REST API (JSON), where the
	// strings "@customer", "@from" and "@to" are replaced by the values;
	// it must filter on "@customer" as parseCubeQuery says.
	Query string `yaml:"query"`
	// Fresh and ClosedFresh override how long the report stays fresh while
	// its range includes today, and once it has ended (Go durations);
	// default: dashcache.OpenTTL and ClosedTTL.
	Fresh       time.Duration `yaml:"fresh"`
	ClosedFresh time.Duration `yaml:"closed_fresh"`
	// Card is the ID of a Metabase saved question.
	Card int `yaml:"card"`
	// CustomerParameter and RangeParameter name a Metabase question's
	// template tags for the customer and the date range. Defaults:
	// customer, range.
	CustomerParameter string `yaml:"customer_parameter"`
	RangeParameter    string `yaml:"range_parameter"`
	// Partition, when set, caches the report by calendar month: its data
	// must be additive by day (see dashcache.Partition).
	Partition *Partition `yaml:"partition"`
}

// Partition is a report's partitioning in the catalogue:
//
//	partition:
//	  by: month             # the only one: calendar months in DASHCACHE_TIMEZONE
//	  rows: "."             # the answer is the rows (SQL, Cube, Metabase); or its field that holds them
//	  day_field: day        # the rows' date
//	  from_field: from      # an answer object's fields that hold its range (optional)
//	  to_field: to
//	  totals: {revenue: sum, orders: sum, days: count}   # an answer object's totals
type Partition struct {
	By        string                     `yaml:"by"`
	Rows      string                     `yaml:"rows"`
	DayField  string                     `yaml:"day_field"`
	FromField string                     `yaml:"from_field"`
	ToField   string                     `yaml:"to_field"`
	Totals    map[string]dashcache.Total `yaml:"totals"`
}

// PartitionByMonth is the only Partition.By.
const PartitionByMonth = "month"

// Partitions returns the catalogue's partitioned reports, by name; none
// without a catalogue (c nil).
func (c *Catalogue) Partitions() map[string]*dashcache.Partition {
	out := map[string]*dashcache.Partition{}
	if c == nil {
		return out
	}
	for name, r := range c.Reports {
		if r.Partition != nil {
			out[name] = r.Partition.domain()
		}
	}
	return out
}

func (p *Partition) domain() *dashcache.Partition {
	return &dashcache.Partition{Rows: p.Rows, DayField: p.DayField, FromField: p.FromField, ToField: p.ToField, Totals: p.Totals}
}

// sqlParams are the named parameters a SQL query may use.
var sqlParams = []string{"customer", "from", "to"}

// maxFresh bounds a report's freshness: an index entry outlives any
// report's by a day (store's indexKept).
const maxFresh = dashcache.ClosedTTL

// minFresh bounds it below: a report fresh for less would be refreshed,
// a BI call each time, by nearly every read.
const minFresh = 10 * time.Second

// Freshness returns how long the report stays fresh: its overrides; none
// without a catalogue (c nil) or for the default report.
func (c *Catalogue) Freshness(report string) dashcache.Freshness {
	if c == nil {
		return dashcache.Freshness{}
	}
	r := c.Reports[report]
	return dashcache.Freshness{Open: r.Fresh, Closed: r.ClosedFresh}
}

// LoadCatalogue reads and checks a report catalogue; see ParseCatalogue.
func LoadCatalogue(path string) (*Catalogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the report catalogue: %w", err)
	}
	c, err := ParseCatalogue(data)
	if err != nil {
		return nil, fmt.Errorf("report catalogue %s: %w", path, err)
	}
	return c, nil
}

// ParseCatalogue decodes and checks a report catalogue. Unknown fields are
// errors, and every problem found is reported, each naming the report or
// back end and the field, and saying what is accepted.
func ParseCatalogue(data []byte) (*Catalogue, error) {
	var c Catalogue
	err := yamlfile.Decode(data, &c, map[string]string{
		"provider.Catalogue": "the file accepts backends and reports",
		"provider.Backend":   "a back end accepts type, dsn_env, url, token_env, secret_env, api_key_env, rate, burst and max_rows",
		"provider.Report":    "a report accepts backend, query, fresh, closed_fresh, card, customer_parameter, range_parameter and partition",
		"provider.Partition": "a partition accepts by, rows, day_field, from_field, to_field and totals",
	}, "the file is empty; it needs backends: and reports: (see the report catalogue in the README)",
		"the file holds more than one YAML document; put every back end and report in one")
	if err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

// fieldsOf are, by back end type, the fields that apply to a back end of
// that type and to a report of it, besides those every one takes (type,
// rate, burst; backend, fresh, closed_fresh). Any other is refused: a field
// that would do nothing is a mistake, such as a report written for another
// back end, or a secret's variable under the wrong name.
var fieldsOf = map[string]struct{ backend, report []string }{
	TypePostgres: {backend: []string{"dsn_env", "max_rows"}, report: []string{"query"}},
	TypeMySQL:    {backend: []string{"dsn_env", "max_rows"}, report: []string{"query"}},
	TypeCube:     {backend: []string{"url", "secret_env"}, report: []string{"query"}},
	TypeMetabase: {backend: []string{"url", "api_key_env"}, report: []string{"card", "customer_parameter", "range_parameter"}},
	TypeHTTP:     {backend: []string{"url", "token_env"}},
}

// given returns the fields of b that fieldsOf decides on, and whether each
// is set.
func (b Backend) given() map[string]bool {
	return map[string]bool{"dsn_env": b.DSNEnv != "", "url": b.URL != "", "token_env": b.TokenEnv != "",
		"secret_env": b.SecretEnv != "", "api_key_env": b.APIKeyEnv != "", "max_rows": b.MaxRows != 0}
}

// given returns the fields of r that fieldsOf decides on, and whether each
// is set.
func (r Report) given() map[string]bool {
	return map[string]bool{"query": r.Query != "", "card": r.Card != 0,
		"customer_parameter": r.CustomerParameter != "", "range_parameter": r.RangeParameter != ""}
}

// envName is what an environment variable's name looks like. A value of
// dsn_env, token_env, secret_env or api_key_env that does not is most likely
// the secret itself, pasted into the file.
var envName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// check reports every problem in c, joined, in the order of the names.
func (c *Catalogue) check() error {
	var errs []error
	if len(c.Reports) == 0 {
		errs = append(errs, errors.New("reports: at least one report is required"))
	}
	used := map[string]bool{}
	for _, r := range c.Reports {
		used[r.Backend] = true
	}
	for _, name := range sortedKeys(c.Backends) {
		errs = append(errs, checkBackend(name, c.Backends[name], used[name])...)
	}
	for _, name := range sortedKeys(c.Reports) {
		errs = append(errs, c.checkReport(name)...)
	}
	return errors.Join(errs...)
}

// checkBackend reports every problem of back end name, b; used says
// whether a report uses it.
func checkBackend(name string, b Backend, used bool) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("back end %s: "+format, append([]any{name}, args...)...))
	}
	if err := dashcache.CheckReportName(name); err != nil {
		bad("the name: a back end's name is 1-%d characters of a-z 0-9 _ -", dashcache.MaxReportNameLen)
	}
	fields, ok := fieldsOf[b.Type]
	if !ok {
		bad("type %q: use one of %s", b.Type, strings.Join(BackendTypes, ", "))
	}
	given := b.given()
	for _, f := range sortedKeys(given) {
		if given[f] && ok && !slices.Contains(fields.backend, f) {
			bad("%s does not apply to a back end of type %s, which takes %s", f, b.Type, sentence(slices.Concat([]string{"type"}, fields.backend, []string{"rate", "burst"})))
		}
	}
	switch b.Type {
	case TypePostgres, TypeMySQL:
		if b.DSNEnv == "" {
			bad("dsn_env is required: the environment variable that holds the connection string")
		}
	case TypeCube:
		if b.SecretEnv == "" {
			bad("secret_env is required: the environment variable that holds Cube's API secret (CUBEJS_API_SECRET)")
		}
	case TypeMetabase:
		if b.APIKeyEnv == "" {
			bad("api_key_env is required: the environment variable that holds a Metabase API key")
		}
	}
	if slices.Contains(fields.backend, "url") {
		raw := b.URL
		if u, err := url.Parse(raw); err == nil && u.User != nil {
			bad("url must not carry a user or password (not shown here): secrets are never in the file; the credential goes in the environment variable that %s names", secretFields[b.Type])
			u.User = nil // so that no error below shows them
			raw = u.String()
		}
		// As the back end's constructor will check it.
		if err := checkBaseURL("url", raw); err != nil {
			bad("%v", err)
		}
	}
	for _, env := range []struct{ field, name string }{
		{"dsn_env", b.DSNEnv}, {"token_env", b.TokenEnv}, {"secret_env", b.SecretEnv}, {"api_key_env", b.APIKeyEnv},
	} {
		if env.name != "" && !envName.MatchString(env.name) {
			// The value is not quoted: it may be the secret.
			bad("%s must name an environment variable ([A-Z_][A-Z0-9_]*), the one that holds the secret, never hold the secret itself (its value is not shown here)", env.field)
		}
	}
	if b.Rate < 0 || b.Burst < 0 || b.MaxRows < 0 {
		bad("rate, burst and max_rows must not be negative")
	}
	if !used {
		bad("no report uses it: remove it, or add a report")
	}
	return errs
}

// checkReport reports every problem of report name.
func (c *Catalogue) checkReport(name string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("report %s: "+format, append([]any{name}, args...)...))
	}
	r := c.Reports[name]
	if err := checkReportName(name); err != nil {
		errs = append(errs, err)
	}
	if r.Fresh < 0 || r.ClosedFresh < 0 || r.Fresh > maxFresh || r.ClosedFresh > maxFresh ||
		r.Fresh > 0 && r.Fresh < minFresh || r.ClosedFresh > 0 && r.ClosedFresh < minFresh {
		bad("fresh and closed_fresh are Go durations from %s to %s, such as 5m or 24h", minFresh, maxFresh)
	}
	b, ok := c.Backends[r.Backend]
	if !ok {
		bad("backend %q is not one of the back ends (%s)", r.Backend, strings.Join(sortedKeys(c.Backends), ", "))
		return errs
	}
	if fields, ok := fieldsOf[b.Type]; ok {
		given := r.given()
		for _, f := range sortedKeys(given) {
			if given[f] && !slices.Contains(fields.report, f) {
				bad("%s does not apply to a report of back end %s (%s), which takes %s", f, r.Backend, b.Type, sentence(slices.Concat([]string{"backend"}, fields.report, []string{"fresh", "closed_fresh", "partition"})))
			}
		}
	}
	switch b.Type {
	case TypePostgres, TypeMySQL:
		if err := checkSQL(r.Query, b.Type); err != nil {
			bad("query: %v", err)
		}
	case TypeCube:
		if _, err := parseCubeQuery(r.Query); err != nil {
			bad("query: %v", err)
		}
	case TypeMetabase:
		if r.Card <= 0 {
			bad("card is required: the ID of the Metabase saved question")
		}
	}
	if p := r.Partition; p != nil {
		if p.By != PartitionByMonth {
			bad("partition: by is %q; the one partitioning is %q (calendar months in DASHCACHE_TIMEZONE)", p.By, PartitionByMonth)
		}
		if err := p.domain().Validate(); err != nil {
			bad("partition: %v", err)
		}
		if b.Type != TypeHTTP && p.Rows != dashcache.RowsAnswer {
			bad(`partition: rows must be "." for a back end of type %s, whose answer is the rows`, b.Type)
		}
	}
	return errs
}

// checkReportName returns nil for a report's name, else an error that names
// the report and says why with dashcache.CheckReportName's own error (what
// a report's name is): the one check of a report's name, for the catalogue
// and for each back end's constructor.
func checkReportName(name string) error {
	if err := dashcache.CheckReportName(name); err != nil {
		return fmt.Errorf("report %q: the name: %w", name, err)
	}
	return nil
}

// sentence lists words as a sentence does: "a, b and c".
func sentence(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// checkSQL checks a SQL report's query for a back end of type typ: given,
// with only the named parameters sqlParams, and @customer among them, so
// that a report never reads across customers. The parameters are read as
// the back end will bind them: PostgreSQL's by pgx itself (whose lexer
// nests comments as PostgreSQL does), MySQL's by MySQL's lexical rules
// (mysqlBinds), which also refuse what MySQL would run that they cannot
// read (an executable comment /*! ... */).
func checkSQL(query, typ string) error {
	if strings.TrimSpace(query) == "" {
		return errors.New("is required: the SQL, with @customer, @from and @to")
	}
	binds := pgxBinds
	if typ == TypeMySQL {
		binds = mysqlBinds
	}
	used, err := binds(query)
	if err != nil {
		return err
	}
	if !used["customer"] {
		return errors.New("does not use @customer (outside comments and literals): every report must be limited to the customer it is read for")
	}
	return nil
}

// pgxBinds returns the named parameters that pgx binds in query, as it
// will run it.
func pgxBinds(query string) (map[string]bool, error) {
	sentinels := pgx.NamedArgs{}
	for _, name := range sqlParams {
		sentinels[name] = "\x00dashcache:" + name
	}
	_, args, err := sentinels.RewriteQuery(context.Background(), nil, query, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot be read as pgx reads it: %v", err)
	}
	bound := map[string]bool{}
	for _, a := range args {
		found := false
		for name, v := range sentinels {
			if a == v {
				bound[name], found = true, true
			}
		}
		if !found {
			return nil, errors.New("has a named parameter other than @customer, @from and @to, as pgx reads it")
		}
	}
	return bound, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
