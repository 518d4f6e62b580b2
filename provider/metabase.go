package provider

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dashcache/dashcache"
)

// Defaults of MetabaseReport.
const (
	// DefaultCustomerParameter is the default MetabaseReport.CustomerParameter.
	DefaultCustomerParameter = "customer"
	// DefaultRangeParameter is the default MetabaseReport.RangeParameter.
	DefaultRangeParameter = "range"
)

// MetabaseReport is one named report answered by a Metabase saved question
// (a card) written in SQL, whose template tags take the customer and the
// date range.
type MetabaseReport struct {
	// Card is the saved question's ID. Required.
	Card int
	// CustomerParameter names the card's template tag for the customer: a
	// Text variable (WHERE customer = {{customer}}), which Metabase binds as
	// a value. Make it required in Metabase: a tag that matches no parameter
	// of the request is dropped from an optional clause, which would read
	// every customer's rows. Default "customer".
	CustomerParameter string
	// RangeParameter names the card's template tag for the date range: a
	// Field Filter on a date column (WHERE {{range}}), given from~to with
	// both days included. Default "range".
	RangeParameter string
}

// MetabaseConfig configures a Metabase back end.
type MetabaseConfig struct {
	// URL is Metabase's absolute http or https URL, without query or
	// fragment; "/api/card/{id}/query" is appended. Required.
	URL string
	// APIKey is sent as "x-api-key: <APIKey>" (a Metabase API key, made in
	// Admin > Settings > Authentication > API keys). Required.
	APIKey string
	// Reports are the reports by name (1-32 characters of a-z 0-9 _ -).
	// At least one is required.
	Reports map[string]MetabaseReport
	// Timeout bounds one call, from sending the request to reading the
	// whole answer. Default 60s (DefaultTimeout).
	Timeout time.Duration
	// MaxBodyBytes is the largest answer accepted, and the largest report
	// made from it; a larger one is invalid. Default 16 MiB
	// (DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// HTTPClient sends the requests (it never follows a redirect: the API
	// key goes only to URL). Default: the client Client uses, with dial,
	// TLS handshake and idle connection timeouts.
	HTTPClient *http.Client
	// Now is the clock that says when a card's template tags were last
	// found fit, and so when they are read again. Default time.Now.
	Now func() time.Time
}

// Metabase answers the catalogue's named reports by running Metabase saved
// questions through its API (POST /api/card/{id}/query), the customer and
// the date range given as the card's parameters. It is safe for concurrent
// use.
//
// A report is a JSON array with one object per row, keyed by the names of
// the answer's columns in their order, each value as Metabase gives it.
type Metabase struct {
	httpBackend
	apiKey  string
	reports map[string]MetabaseReport
	now     func() time.Time
	// verified holds, by MetabaseReport (its card and the two tags it
	// aims at), when the card's tags were last found fit for it (see
	// verify): two reports of one card may name other tags.
	verified sync.Map
}

// verifyEvery is how long a card's template tags, once found fit, are
// trusted before they are read again: someone may change the card.
const verifyEvery = 5 * time.Minute

// NewMetabase returns a Metabase back end for cfg, with defaults for zero
// fields, after checking every field and report (all problems at once). It
// does not call Metabase. Its errors never contain the API key or a password
// in URL.
func NewMetabase(cfg MetabaseConfig) (*Metabase, error) {
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	reports := make(map[string]MetabaseReport, len(cfg.Reports))
	for name, r := range cfg.Reports {
		r.CustomerParameter = cmp.Or(r.CustomerParameter, DefaultCustomerParameter)
		r.RangeParameter = cmp.Or(r.RangeParameter, DefaultRangeParameter)
		reports[name] = r
	}
	cfg.Reports = reports
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Metabase{
		httpBackend: newHTTPBackend(cfg.URL, cfg.HTTPClient, cfg.Timeout, cfg.MaxBodyBytes, catalogueURLSetting),
		apiKey:      cfg.APIKey,
		reports:     maps.Clone(cfg.Reports),
		now:         cfg.Now,
	}, nil
}

func (cfg MetabaseConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("provider: metabase: "+format, args...))
	}
	if err := checkBaseURL("URL", cfg.URL); err != nil {
		bad("%v", err)
	}
	if cfg.APIKey == "" {
		bad("APIKey is required: a Metabase API key")
	}
	if cfg.Timeout < 0 {
		bad("Timeout must not be negative, got %s", cfg.Timeout)
	}
	if cfg.MaxBodyBytes < 0 {
		bad("MaxBodyBytes must not be negative, got %d", cfg.MaxBodyBytes)
	}
	if len(cfg.Reports) == 0 {
		bad("at least one report is required")
	}
	for _, name := range sortedKeys(cfg.Reports) {
		r := cfg.Reports[name]
		if err := checkReportName(name); err != nil {
			bad("%v", err)
		}
		if r.Card <= 0 {
			bad("report %s: Card must be the ID of a saved question (a positive number), got %d", name, r.Card)
		}
		if r.CustomerParameter == r.RangeParameter {
			bad("report %s: the customer and the range parameters are both %q; they are two template tags", name, r.CustomerParameter)
		}
	}
	return errors.Join(errs...)
}

// metabaseParameter is one parameter of a card query, as Metabase's API
// takes it.
type metabaseParameter struct {
	Type   string `json:"type"`
	Target []any  `json:"target"`
	Value  string `json:"value"`
}

// templateTag is the target of a card's template tag: "variable" for a
// basic variable (Text, Number, Date), "dimension" for a Field Filter.
// Metabase applies a parameter only to a tag of the matching kind.
func templateTag(kind, name string) []any {
	return []any{kind, []any{"template-tag", name}}
}

// metabaseAnswer is the part of a card query's answer that Query reads.
type metabaseAnswer struct {
	Status    string          `json:"status"`
	Error     json.RawMessage `json:"error"`
	ErrorType string          `json:"error_type"`
	Data      *struct {
		Rows          *[][]json.RawMessage     `json:"rows"`
		Cols          *[]struct{ Name string } `json:"cols"`
		RowsTruncated json.RawMessage          `json:"rows_truncated"`
	} `json:"data"`
}

// Query runs the card of report k.Report with its customer parameter (a
// "category" value targeting the Text variable) set to k.Customer and its
// range parameter (a "date/range" value targeting the Field Filter) to
// "from~to", and returns the rows as a JSON array of objects keyed by the
// columns' names in their order ([] for no rows), values verbatim.
//
// A failure is a *dashcache.ProviderError: permanent for a report this back
// end does not have, a query Metabase ran and reports "failed" with a
// client error_type (such as invalid-query: see metabaseOutcome), 401, 403,
// a redirect and any other 4xx; rate_limited on 429 (with RetryAfter);
// transient on a "failed" query with a server error_type (db, timed-out...)
// or none, 5xx, timeouts and connection errors; invalid on a success without data, that is not JSON or not
// UTF-8, that Metabase truncated (rows_truncated: it applies its row limit
// to card queries), or that is larger than MaxBodyBytes.
func (m *Metabase) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	r, ok := m.reports[k.Report]
	if !ok {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent,
			Err: fmt.Errorf("report %q is not one of this metabase back end's reports (%s)", k.Report, strings.Join(sortedKeys(m.reports), ", "))}
	}
	op := fmt.Sprintf("report %s: POST /api/card/%d/query", k.Report, r.Card)
	body, err := json.Marshal(map[string][]metabaseParameter{"parameters": {
		{Type: "category", Target: templateTag("variable", r.CustomerParameter), Value: k.Customer},
		{Type: "date/range", Target: templateTag("dimension", r.RangeParameter), Value: k.From.String() + "~" + k.To.String()},
	}})
	if err != nil {
		return nil, transient(0, fmt.Errorf("%s: encoding parameters: %w", op, err))
	}
	if err := m.verify(ctx, k.Report, r); err != nil {
		return nil, err
	}
	data, err := m.do(ctx, op, http.MethodPost, fmt.Sprintf("/api/card/%d/query", r.Card), body, m.maxBody)
	if err != nil {
		return nil, err
	}
	return m.report(op, data)
}

// verify checks, at most every verifyEvery, that the report's card has the
// template tags its parameters are aimed at, of the kinds they need:
// Metabase ignores a parameter aimed at a tag of another kind, and an
// optional customer filter left without a value would return every
// customer's rows. So the customer's tag must be a Text or Number variable
// that is required, and the range's a Field Filter.
func (m *Metabase) verify(ctx context.Context, report string, r MetabaseReport) error {
	if at, ok := m.verified.Load(r); ok && m.now().Sub(at.(time.Time)) < verifyEvery {
		return nil
	}
	op := fmt.Sprintf("report %s: GET /api/card/%d", report, r.Card)
	data, err := m.do(ctx, op, http.MethodGet, fmt.Sprintf("/api/card/%d", r.Card), nil, maxCardBytes)
	if err != nil {
		return err
	}
	var card struct {
		DatasetQuery struct {
			Native struct {
				Tags map[string]struct {
					Type     string `json:"type"`
					Required bool   `json:"required"`
				} `json:"template-tags"`
			} `json:"native"`
		} `json:"dataset_query"`
	}
	if err := json.Unmarshal(data, &card); err != nil {
		return invalid(fmt.Errorf("%s: the answer is not a card: %v", op, err))
	}
	tags := card.DatasetQuery.Native.Tags
	unfit := func(format string, args ...any) error {
		return &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent,
			Err: fmt.Errorf("%s: "+format+"; fix the question in Metabase, or customer_parameter/range_parameter in the catalogue", append([]any{op}, args...)...)}
	}
	switch c, ok := tags[r.CustomerParameter]; {
	case !ok:
		return unfit("the card has no template tag %q for the customer", r.CustomerParameter)
	case c.Type != "text" && c.Type != "number":
		return unfit("its tag %q is of type %q; the customer's must be a Text or Number variable", r.CustomerParameter, c.Type)
	case !c.Required:
		return unfit("its tag %q is not required; an optional customer filter would let the question return every customer's rows", r.CustomerParameter)
	}
	if d, ok := tags[r.RangeParameter]; !ok || d.Type != "dimension" {
		return unfit("the card has no Field Filter (dimension) tag %q for the date range", r.RangeParameter)
	}
	m.verified.Store(r, m.now())
	return nil
}

// check runs, for each of reports (its reports' names), the check of the
// report's card that Query runs before it queries it (verify), with the
// API key: the card exists, its customer tag is a required Text or Number
// variable, its range tag a Field Filter. A 401 or 403 says the key is
// wrong.
func (m *Metabase) check(ctx context.Context, reports []string) (map[string]reportCheck, error) {
	out := make(map[string]reportCheck, len(reports))
	for _, name := range reports {
		r, ok := m.reports[name]
		if !ok {
			out[name] = reportCheck{err: fmt.Errorf("report %q is not one of this metabase back end's reports", name)}
			continue
		}
		out[name] = reportCheck{
			detail: fmt.Sprintf("card %d: %q is a required variable, %q a Field Filter", r.Card, r.CustomerParameter, r.RangeParameter),
			err:    refused(m.verify(ctx, name, r), "Metabase refused the key: is api_key_env's value a Metabase API key?"),
		}
	}
	return out, nil
}

// maxCardBytes bounds a card's description (GET /api/card/{id}).
const maxCardBytes = 4 << 20

// do sends one request (a body: JSON) and returns the body of a success
// (200, or the 202 Metabase answers a finished query with), at most maxBody
// bytes, else a *dashcache.ProviderError.
func (m *Metabase) do(ctx context.Context, op, method, path string, body []byte, maxBody int64) ([]byte, error) {
	callCtx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	return m.send(ctx, callCtx, exchange{op: op, method: method, path: path, body: body,
		header: http.Header{"X-Api-Key": {m.apiKey}}, accepted: http.StatusAccepted, maxBody: maxBody, secrets: []string{m.apiKey}})
}

// metabaseClientErrors are the error types of a failed query that are
// Metabase's client errors (in metabase/query_processor/error_type.clj,
// :client and the types derived from it, "the equivalent of an HTTP 4xx"):
// the card, its parameters or the API key's permissions are wrong, and
// asking again will not mend them.
var metabaseClientErrors = map[string]bool{
	"client":                       true,
	"missing-required-permissions": true,
	"invalid-query":                true,
	"missing-required-parameter":   true,
	"invalid-parameter":            true,
	"unsupported-feature":          true,
}

// metabaseOutcome classifies a query Metabase ran and reports "failed" by
// its error_type: permanent for a client error (metabaseClientErrors);
// transient for its server errors (server, timed-out, qp, driver, db: the
// warehouse behind Metabase is down or slow, or Metabase itself failed),
// and for a type it does not give or this list does not know, so that an
// outage is retried and counted by the back end's breaker rather than
// remembered as the report's own fault.
func metabaseOutcome(errorType string) dashcache.ProviderOutcome {
	if metabaseClientErrors[errorType] {
		return dashcache.OutcomePermanent
	}
	return dashcache.OutcomeTransient
}

// report turns a card query's answer into the report: rows become objects
// keyed by the columns' names.
func (m *Metabase) report(op string, data []byte) ([]byte, error) {
	var a metabaseAnswer
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, invalid(fmt.Errorf("%s: answer is not Metabase's query result: %v: %s", op, err, snippet(data, m.apiKey)))
	}
	if a.Status == "failed" {
		msg := snippet(a.Error, m.apiKey)
		var text string
		if json.Unmarshal(a.Error, &text) == nil {
			msg = snippet([]byte(text), m.apiKey)
		}
		return nil, &dashcache.ProviderError{Outcome: metabaseOutcome(a.ErrorType), Code: a.ErrorType,
			Err: fmt.Errorf("%s: Metabase failed to run the query (error_type %q): %s", op, a.ErrorType, msg)}
	}
	if a.Status != "completed" || a.Data == nil || a.Data.Rows == nil || a.Data.Cols == nil {
		return nil, invalid(fmt.Errorf("%s: answer has no completed data (status %q): %s", op, a.Status, snippet(data, m.apiKey)))
	}
	if len(a.Data.RowsTruncated) > 0 && string(a.Data.RowsTruncated) != "null" {
		return nil, invalid(fmt.Errorf("%s: Metabase cut the answer at %s rows (its limit for card queries); the report would be incomplete", op, a.Data.RowsTruncated))
	}

	cols := *a.Data.Cols
	keys := make([][]byte, len(cols))
	seen := make(map[string]bool, len(cols))
	for i, c := range cols {
		if seen[c.Name] {
			return nil, invalid(fmt.Errorf("%s: two columns are named %q; give each column of the question its own name", op, c.Name))
		}
		seen[c.Name] = true
		keys[i], _ = json.Marshal(c.Name) // a string always encodes
	}
	var out bytes.Buffer
	out.WriteByte('[')
	for n, row := range *a.Data.Rows {
		if len(row) != len(cols) {
			return nil, invalid(fmt.Errorf("%s: row %d has %d values for %d columns", op, n+1, len(row), len(cols)))
		}
		if n > 0 {
			out.WriteByte(',')
		}
		out.WriteByte('{')
		for i, v := range row {
			if i > 0 {
				out.WriteByte(',')
			}
			out.Write(keys[i])
			out.WriteByte(':')
			out.Write(v)
		}
		out.WriteByte('}')
		if int64(out.Len()) > m.maxBody {
			return nil, invalid(fmt.Errorf("%s: report is larger than %d bytes (DASHCACHE_PROVIDER_MAX_BYTES)", op, m.maxBody))
		}
	}
	out.WriteByte(']')
	return out.Bytes(), nil
}
