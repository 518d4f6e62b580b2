package provider

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/dashcache/dashcache"
)

// The placeholders of a Cube report's query: a JSON string value equal to
// one of them is replaced by the key's customer, first or last day.
const (
	cubeCustomer = "@customer"
	cubeFrom     = "@from"
	cubeTo       = "@to"
)

// Cube's REST endpoints, under its default base path (/cubejs-api): the
// data of a query, and the cubes' description, which reads no rows.
const (
	cubeLoadPath = "/cubejs-api/v1/load"
	cubeMetaPath = "/cubejs-api/v1/meta"
)

// cubeRefused is what to check when Cube refuses a token (401 or 403).
const cubeRefused = "Cube refused the token: is secret_env's value Cube's CUBEJS_API_SECRET?"

// cubeContinueWait is the error of Cube's 200 answer to a query that is
// still running: ask again with the same query.
const cubeContinueWait = "Continue wait"

// How long Query waits before asking again after "Continue wait": the first
// pause, doubled each time up to the last.
const (
	cubeFirstPause = 200 * time.Millisecond
	cubeMaxPause   = time.Second
)

// cubeTokenGrace is how much longer than the call's timeout a token is
// valid: room for clock skew between dashcache and Cube.
const cubeTokenGrace = time.Minute

// CubeConfig configures a Cube back end.
type CubeConfig struct {
	// URL is Cube's absolute http or https base URL, without query or
	// fragment; "/cubejs-api/v1/load" is appended. Required.
	URL string
	// Secret is Cube's API secret (CUBEJS_API_SECRET): it signs the token
	// (HS256) of each call. Required.
	Secret string
	// Reports maps each report's name to its query in Cube's REST query
	// format (a JSON object), where the JSON strings "@customer", "@from"
	// and "@to" stand for the key's values; each must be limited to the
	// customer (see parseCubeQuery). At least one is required.
	Reports map[string]string
	// Timeout bounds one call, "Continue wait" answers and the pauses
	// between them included. Default 60s (DefaultTimeout).
	Timeout time.Duration
	// MaxBodyBytes is the largest answer accepted; a larger one is
	// invalid. Default 16 MiB (DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// HTTPClient sends the requests (it never follows a redirect: the
	// token goes only to URL). Default: the same hardened client as
	// Client's.
	HTTPClient *http.Client
	// Now is the clock the tokens are dated by. Default time.Now.
	Now func() time.Time
}

// Cube answers the named reports of the catalogue from Cube's REST API
// (POST /cubejs-api/v1/load). It is safe for concurrent use.
//
// Each call signs a short-lived token whose security context is
// {"customer": <the key's customer>}, and asks again with the same query
// and the same x-request-id while Cube answers "Continue wait": to its
// caller (and the guard's rate and budget) it is one call.
type Cube struct {
	httpBackend
	secret  []byte
	reports map[string]any // name -> the parsed query
	now     func() time.Time
}

// NewCube returns a Cube back end for cfg, with defaults for zero fields. It
// checks every report (a name as the catalogue accepts, and a JSON object
// limited to the customer by a filter: parseCubeQuery) and reports every
// problem at once. It does not
// connect. Its errors never contain the secret.
func NewCube(cfg CubeConfig) (*Cube, error) {
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	reports, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return &Cube{
		httpBackend: newHTTPBackend(cfg.URL, cfg.HTTPClient, cfg.Timeout, cfg.MaxBodyBytes, catalogueURLSetting),
		secret:      []byte(cfg.Secret),
		reports:     reports,
		now:         cfg.Now,
	}, nil
}

// validate checks cfg and returns its reports' parsed queries.
func (cfg CubeConfig) validate() (map[string]any, error) {
	var errs []error
	if err := checkBaseURL("URL", cfg.URL); err != nil {
		errs = append(errs, fmt.Errorf("provider: cube: %w", err))
	}
	if cfg.Secret == "" {
		errs = append(errs, errors.New("provider: cube: Secret is required: Cube's API secret signs every call's token"))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("provider: cube: Timeout must not be negative, got %s", cfg.Timeout))
	}
	if cfg.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("provider: cube: MaxBodyBytes must not be negative, got %d", cfg.MaxBodyBytes))
	}
	if len(cfg.Reports) == 0 {
		errs = append(errs, errors.New("provider: cube: at least one report is required"))
	}
	reports := make(map[string]any, len(cfg.Reports))
	for _, name := range sortedKeys(cfg.Reports) {
		if err := checkReportName(name); err != nil {
			errs = append(errs, fmt.Errorf("provider: %w", err))
		}
		q, err := parseCubeQuery(cfg.Reports[name])
		if err != nil {
			errs = append(errs, fmt.Errorf("provider: report %s: query: %w", name, err))
			continue
		}
		reports[name] = q
	}
	return reports, errors.Join(errs...)
}

// cubeCustomerFilter is the filter that limits a Cube report to the customer
// it is read for, as errors show it.
const cubeCustomerFilter = `{"member": "<Cube>.<customer dimension>", "operator": "equals", "values": ["@customer"]}`

// parseCubeQuery decodes a Cube report's query, in Cube's REST query format
// (a JSON object), keeping numbers as written (a limit of 10 is sent as 10,
// not 1e+01). Both the catalogue's check and NewCube read a query with it.
//
// It checks that the query's structure limits it to the customer, since
// "@customer" found anywhere does not: in a dimension list it limits
// nothing, and in an "or" another branch reads every customer's rows. Cube
// ANDs the filters at the top level of "filters", so one of them, or one
// inside an "and" there, must be cubeCustomerFilter, and "@customer" must
// be nowhere else.
func parseCubeQuery(query string) (map[string]any, error) {
	if strings.TrimSpace(query) == "" {
		return nil, fmt.Errorf(`is required: Cube's JSON query, with the filter %s`, cubeCustomerFilter)
	}
	dec := json.NewDecoder(strings.NewReader(query))
	dec.UseNumber()
	var q map[string]any
	if err := dec.Decode(&q); err != nil {
		return nil, fmt.Errorf("is not a JSON object (Cube's query format): %v", err)
	}
	if _, err := dec.Token(); q == nil || err != io.EOF {
		return nil, errors.New("is not one JSON object (Cube's query format)")
	}
	filters, _ := q["filters"].([]any)
	limited := cubeCustomerFilters(filters)
	if limited == 0 {
		return nil, fmt.Errorf(`is not limited to the customer: put %s in its top-level "filters" (Cube ANDs them), or in an "and" there; not in an "or", where another branch reads every customer's rows`, cubeCustomerFilter)
	}
	if cubePlaceholders(q, cubeCustomer) > limited {
		return nil, fmt.Errorf(`uses "@customer" outside its customer filter: "@customer" may only be the one value of %s in the top-level "filters" or an "and" there`, cubeCustomerFilter)
	}
	return q, nil
}

// cubeCustomerFilters counts the filters among filters, and inside an
// "and" among them (at any depth: all are ANDed), that are
// cubeCustomerFilter.
func cubeCustomerFilters(filters []any) int {
	n := 0
	for _, f := range filters {
		f, _ := f.(map[string]any)
		if and, ok := f["and"].([]any); ok && len(f) == 1 {
			n += cubeCustomerFilters(and)
			continue
		}
		member, _ := f["member"].(string)
		values, _ := f["values"].([]any)
		if len(f) == 3 && member != "" && f["operator"] == "equals" && len(values) == 1 && values[0] == cubeCustomer {
			n++
		}
	}
	return n
}

// cubePlaceholders counts the JSON strings equal to placeholder in v
// (decoded JSON), where substitute would put a value; object keys are not.
func cubePlaceholders(v any, placeholder string) int {
	switch v := v.(type) {
	case string:
		if v == placeholder {
			return 1
		}
	case []any:
		n := 0
		for _, e := range v {
			n += cubePlaceholders(e, placeholder)
		}
		return n
	case map[string]any:
		n := 0
		for _, e := range v {
			n += cubePlaceholders(e, placeholder)
		}
		return n
	}
	return 0
}

// cubeRequest is the body of POST /cubejs-api/v1/load.
type cubeRequest struct {
	Query any `json:"query"`
}

// cubeAnswer is what Query reads of Cube's answer: a finished one has data
// (with query and annotation, not read); one still running, or an error,
// has error.
type cubeAnswer struct {
	Error *string         `json:"error"`
	Data  json.RawMessage `json:"data"`
}

// Query asks Cube for report k.Report with "@customer", "@from" and "@to"
// replaced by k.Customer and k.From and k.To (YYYY-MM-DD), and returns the
// answer's data array verbatim (Cube gives numbers as strings; they stay
// so). While Cube answers "Continue wait" it asks again, after a pause of
// 200ms growing to 1s, until the data comes or ctx or the call's Timeout
// ends.
//
// A failure is a *dashcache.ProviderError: permanent for a report it does
// not know, and on a 4xx other than 429 (a token Cube refuses is 403);
// rate_limited on 429 (with RetryAfter); transient on 5xx, timeouts (still
// "Continue wait" included) and connection errors; invalid on a 200 with no
// data array, or an answer larger than MaxBodyBytes or not UTF-8 JSON.
func (c *Cube) Query(ctx context.Context, k dashcache.ReportKey) ([]byte, error) {
	q, ok := c.reports[k.Report]
	if !ok {
		return nil, &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent,
			Err: fmt.Errorf("cube: no report named %q", k.Report)}
	}
	body, err := json.Marshal(cubeRequest{Query: substitute(q, map[string]string{
		cubeCustomer: k.Customer,
		cubeFrom:     k.From.String(),
		cubeTo:       k.To.String(),
	})})
	if err != nil {
		return nil, transient(0, fmt.Errorf("cube: encoding query: %w", err))
	}

	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	token, err := c.sign(k.Customer)
	if err != nil {
		return nil, err
	}
	call := cubeCall{c: c, ctx: ctx, callCtx: callCtx, body: body, token: token, requestID: rand.Text()}

	pause := cubeFirstPause
	for waits := 0; ; waits++ {
		data, err := call.load()
		if err != nil || data != nil {
			return data, err
		}
		t := time.NewTimer(pause)
		select {
		case <-callCtx.Done():
			t.Stop()
			return nil, transient(0, call.waitError(waits+1))
		case <-t.C:
		}
		pause = min(2*pause, cubeMaxPause)
	}
}

// sign returns the token of one call for customer: HS256, signed with the
// secret, its security context {"customer": customer}, valid for the
// call's timeout and cubeTokenGrace.
func (c *Cube) sign(customer string) (string, error) {
	now := c.now()
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"customer": customer,
		"iat":      jwt.NewNumericDate(now),
		"exp":      jwt.NewNumericDate(now.Add(c.timeout + cubeTokenGrace)),
	}).SignedString(c.secret)
	if err != nil {
		// jwt's errors name the method or key type, never the key.
		return "", transient(0, fmt.Errorf("cube: signing the token: %w", err))
	}
	return token, nil
}

// check proves Cube's url and secret without a query (reports are its
// reports' names): GET /cubejs-api/v1/meta, with a token signed as Query
// signs its own but for no customer (the meta reads no rows), must answer
// 200 with Cube's list of cubes. A 401 or 403 says the secret is wrong.
func (c *Cube) check(ctx context.Context, reports []string) (map[string]reportCheck, error) {
	const op = "cube: GET " + cubeMetaPath
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	token, err := c.sign("")
	if err != nil {
		return nil, err
	}
	secrets := []string{string(c.secret), token}
	answer, err := c.send(ctx, callCtx, exchange{op: op, method: http.MethodGet, path: cubeMetaPath,
		header: http.Header{"Authorization": {token}}, secrets: secrets})
	if err != nil {
		return nil, refused(err, cubeRefused)
	}
	var meta struct {
		Cubes *[]json.RawMessage `json:"cubes"`
	}
	if err := json.Unmarshal(answer, &meta); err != nil || meta.Cubes == nil {
		return nil, invalid(fmt.Errorf("%s: answer is not Cube's meta (no cubes list): %s", op, snippet(answer, secrets...)))
	}
	return sameFor(reports, fmt.Sprintf("Cube took the signed token: GET %s lists %d cubes", cubeMetaPath, len(*meta.Cubes))), nil
}

// substitute returns a copy of v (decoded JSON) where each string equal to
// a key of values is replaced by its value. Object keys stay as they are.
func substitute(v any, values map[string]string) any {
	switch v := v.(type) {
	case string:
		if r, ok := values[v]; ok {
			return r
		}
		return v
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = substitute(e, values)
		}
		return out
	case map[string]any:
		out := maps.Clone(v)
		for key, e := range out {
			out[key] = substitute(e, values)
		}
		return out
	}
	return v // numbers, booleans, null
}

// cubeCall is one Query: the same body, token and x-request-id for each
// request it makes.
type cubeCall struct {
	c         *Cube
	ctx       context.Context // the caller's
	callCtx   context.Context // bounded by Timeout
	body      []byte
	token     string
	requestID string
}

// load sends the query once. It returns the data of a finished answer, nil
// and no error for "Continue wait", or a *dashcache.ProviderError.
func (cc *cubeCall) load() ([]byte, error) {
	const op = "cube: POST " + cubeLoadPath
	header := http.Header{}
	// Cube's documented form: the token alone, no "Bearer".
	header.Set("Authorization", cc.token)
	header.Set("X-Request-Id", cc.requestID)
	answer, err := cc.c.send(cc.ctx, cc.callCtx, exchange{op: op, method: http.MethodPost, path: cubeLoadPath,
		body: cc.body, header: header, secrets: []string{string(cc.c.secret), cc.token}})
	if err != nil {
		return nil, refused(err, cubeRefused)
	}
	var a cubeAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return nil, invalid(fmt.Errorf("%s: answer is not a JSON object: %s", op, cc.snippet(answer)))
	}
	switch {
	case a.Error != nil && *a.Error == cubeContinueWait:
		return nil, nil
	case a.Error != nil:
		return nil, invalid(fmt.Errorf("%s: 200 with error %s", op, cc.snippet([]byte(*a.Error))))
	case len(a.Data) == 0 || a.Data[0] != '[':
		return nil, invalid(fmt.Errorf("%s: 200 without a data array: %s", op, cc.snippet(answer)))
	}
	return a.Data, nil
}

// waitError is the error of a call that ended while Cube still answered
// "Continue wait".
func (cc *cubeCall) waitError(answers int) error {
	err := fmt.Errorf("cube: still %q after %d answers", cubeContinueWait, answers)
	if cc.ctx.Err() == nil {
		return fmt.Errorf("%w: no data within %s: %w", err, cc.c.timeout, cc.callCtx.Err())
	}
	return fmt.Errorf("%w: %w", err, context.Cause(cc.ctx))
}

// snippet is the start of a body for errors, without the secret or the
// token should Cube echo them.
func (cc *cubeCall) snippet(b []byte) string {
	return snippet(b, string(cc.c.secret), cc.token)
}
