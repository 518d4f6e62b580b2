package provider

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dashcache/dashcache"
)

// Defaults of ClientConfig.
const (
	// DefaultTimeout is the default ClientConfig.Timeout.
	DefaultTimeout = 60 * time.Second
	// DefaultMaxBodyBytes is the default ClientConfig.MaxBodyBytes: 16 MiB.
	DefaultMaxBodyBytes = 16 << 20
)

// DefaultRetryAfter is the wait reported for a 429 whose Retry-After header is
// missing, unreadable or not in the future.
const DefaultRetryAfter = time.Second

// MaxRetryAfter caps the wait taken from a Retry-After header, so that one odd
// answer cannot pause the fleet for days.
const MaxRetryAfter = time.Hour

// snippetLen is how much of an error response's body goes into the error.
const snippetLen = 200

// ClientConfig configures a Client.
type ClientConfig struct {
	// BaseURL is the BI platform's absolute http or https URL, without query
	// or fragment; "/query" and "/customers" are appended. Required.
	BaseURL string
	// Token is sent as "Authorization: Bearer <Token>". Default: unset, no
	// Authorization header.
	Token string
	// Timeout bounds one call, from sending the request to reading the whole
	// answer. Default 60s.
	Timeout time.Duration
	// MaxBodyBytes is the largest answer accepted; a larger one is a transient
	// failure. Default 16 MiB.
	MaxBodyBytes int64
	// HTTPClient sends the requests (it never follows a redirect: the token
	// goes only to BaseURL). Default: a client of the package's own with
	// dial, TLS handshake and idle connection timeouts.
	HTTPClient *http.Client
	// URLSetting names where BaseURL is configured, for errors that ask to
	// check it. Default "DASHCACHE_PROVIDER_URL".
	URLSetting string
}

// Client calls the BI platform over HTTP, following the provider contract.
// It is safe for concurrent use.
type Client struct {
	httpBackend
	token string
}

// NewClient returns a Client for cfg, with defaults for zero fields. Its errors
// never contain the token or a password in BaseURL.
func NewClient(cfg ClientConfig) (*Client, error) {
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Client{
		httpBackend: newHTTPBackend(cfg.BaseURL, cfg.HTTPClient, cfg.Timeout, cfg.MaxBodyBytes, cmp.Or(cfg.URLSetting, "DASHCACHE_PROVIDER_URL")),
		token:       cfg.Token,
	}, nil
}

func (cfg ClientConfig) validate() error {
	if err := checkBaseURL("BaseURL", cfg.BaseURL); err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("provider: Timeout must not be negative, got %s", cfg.Timeout)
	}
	if cfg.MaxBodyBytes < 0 {
		return fmt.Errorf("provider: MaxBodyBytes must not be negative, got %d", cfg.MaxBodyBytes)
	}
	return nil
}

// checkBaseURL checks the base URL of a back end, the setting field: given,
// absolute http or https, without query or fragment. Its errors start with
// field and never hold a password the URL may carry.
func checkBaseURL(field, raw string) error {
	if raw == "" {
		return fmt.Errorf("%s is required: an absolute http:// or https:// URL", field)
	}
	// url.Parse's error quotes the whole URL, password included: don't wrap it.
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s is not a valid URL", field)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		u.User = nil // a token may be given as the user
		return fmt.Errorf("%s %q must be an absolute http:// or https:// URL", field, u.String())
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// Not quoted: a query may hold a token.
		return fmt.Errorf("%s must not have a query or fragment (?... or #...): paths are appended to it", field)
	}
	return nil
}

// noRedirects returns a copy of hc (nil: the package's own hardened client)
// that never follows a redirect: a back end's credentials go only to its
// own URL, and an answer from elsewhere is never taken for a report.
func noRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = newHTTPClient()
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func newHTTPClient() *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32, // a worker runs up to 10 tasks at once by default
		IdleConnTimeout:       90 * time.Second,
	}}
}

// queryRequest is the body of POST /query.
type queryRequest struct {
	Customer string `json:"customer"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// Query asks the BI platform for the report of key's customer and range (the
// contract knows no report names: a named report of an http back end is its
// one report) and returns its JSON answer verbatim. A failure is a *dashcache.ProviderError: rate_limited on
// 429 (with RetryAfter), permanent on any other 4xx, transient on 5xx,
// timeouts and connection errors, invalid on a 200 that is not JSON, not
// UTF-8 or too large.
func (c *Client) Query(ctx context.Context, key dashcache.ReportKey) ([]byte, error) {
	body, err := json.Marshal(queryRequest{
		Customer: key.Customer,
		From:     key.From.String(),
		To:       key.To.String(),
	})
	if err != nil {
		return nil, transient(0, fmt.Errorf("encoding query: %w", err))
	}
	key.Report = "" // docs/provider.md's key, customer|from|to: every report of this back end sends this same request
	return c.do(ctx, http.MethodPost, "/query", body, key.String())
}

// Customers asks the BI platform for the names of all its customers, with the
// same failures as Query.
func (c *Client) Customers(ctx context.Context) ([]string, error) {
	body, err := c.do(ctx, http.MethodGet, "/customers", nil, "")
	if err != nil {
		return nil, err
	}
	var customers []string
	if err := json.Unmarshal(body, &customers); err != nil {
		return nil, transient(http.StatusOK, fmt.Errorf("GET /customers: answer is not a JSON array of strings: %w", err))
	}
	return customers, nil
}

// check proves an http back end's url and token without a report query
// (reports are its reports' names): GET /customers, the contract's one
// request that runs none, must list the customers. A 404 or 405 leaves the
// url and the token unproven but is no failure: the contract asks for the
// list only for plans with customers: all. Any other failure (401 or 403:
// the token; a redirect; 5xx; no answer; not a JSON list) is the back
// end's, naming the status.
func (c *Client) check(ctx context.Context, reports []string) (map[string]reportCheck, error) {
	customers, err := c.Customers(ctx)
	var pe *dashcache.ProviderError
	switch {
	case errors.As(err, &pe) && (pe.Status == http.StatusNotFound || pe.Status == http.StatusMethodNotAllowed):
		return sameFor(reports, fmt.Sprintf("answers HTTP, but GET /customers is %d %s: the url and the token are not proven "+
			"(the platform lists no customers, which only plans with customers: all need; or the url is wrong)", pe.Status, http.StatusText(pe.Status))), nil
	case err != nil && c.token == "":
		return nil, refused(err, "the platform wants a token: name its variable in token_env")
	case err != nil:
		return nil, refused(err, "the platform refused the token: is token_env's value its token?")
	}
	return sameFor(reports, fmt.Sprintf("GET /customers lists %d customers: the url and the token are right", len(customers))), nil
}

// refused adds hint to err, a *dashcache.ProviderError of a 401 or a 403
// (the back end refused its credentials), saying what to check; any other
// err is returned as it is.
func refused(err error, hint string) error {
	var pe *dashcache.ProviderError
	if errors.As(err, &pe) && (pe.Status == http.StatusUnauthorized || pe.Status == http.StatusForbidden) {
		pe.Err = fmt.Errorf("%w (%s)", pe.Err, hint)
	}
	return err
}

// do sends one request and returns the body of a 200 that is valid JSON,
// else a *dashcache.ProviderError.
func (c *Client) do(ctx context.Context, method, path string, body []byte, idempotencyKey string) ([]byte, error) {
	op := method + " " + path
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	header := http.Header{}
	if c.token != "" {
		header.Set("Authorization", "Bearer "+c.token)
	}
	if idempotencyKey != "" {
		header.Set("Idempotency-Key", idempotencyKey)
	}
	data, err := c.send(ctx, callCtx, exchange{op: op, method: method, path: path, body: body, header: header, secrets: []string{c.token}})
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, invalid(fmt.Errorf("%s: answer is not valid JSON: %s", op, snippet(data, c.token)))
	}
	return data, nil
}

// httpBackend is what the HTTP back ends (Client, Cube, Metabase) share: the
// base URL, the client that sends their requests (it never follows a
// redirect), the bounds of one call, and where the URL is configured, for
// errors that ask to check it.
type httpBackend struct {
	base       string // without trailing slash
	http       *http.Client
	timeout    time.Duration
	maxBody    int64
	urlSetting string
}

// newHTTPBackend returns the httpBackend of a back end at baseURL, whose
// requests hc (nil: the package's own) sends without following redirects.
func newHTTPBackend(baseURL string, hc *http.Client, timeout time.Duration, maxBody int64, urlSetting string) httpBackend {
	return httpBackend{base: strings.TrimRight(baseURL, "/"), http: noRedirects(hc), timeout: timeout, maxBody: maxBody, urlSetting: urlSetting}
}

// catalogueURLSetting is where a catalogue back end's URL is configured,
// for errors that ask to check it.
const catalogueURLSetting = "the back end's url in the report catalogue"

// exchange is one request of an HTTP back end, and what it accepts in answer.
type exchange struct {
	op           string // what errors call it: "POST /query"
	method, path string // path under the base URL
	body         []byte // JSON; nil: none
	header       http.Header
	// accepted is a status other than 200 that is a success too; 0: none.
	accepted int
	// maxBody bounds the answer; 0: the back end's own bound.
	maxBody int64
	// secrets are cut from any answer quoted in an error.
	secrets []string
}

// send makes the request of x within call (the call's own timeout, within
// the caller's parent context) and returns the body of a success: valid
// UTF-8, at most maxBody bytes. Anything else is a *dashcache.ProviderError:
// transient without an answer, as statusError classifies another status, and
// invalid for a body too large or not UTF-8.
func (h *httpBackend) send(parent, call context.Context, x exchange) ([]byte, error) {
	maxBody := cmp.Or(x.maxBody, h.maxBody)
	req, err := http.NewRequestWithContext(call, x.method, h.base+x.path, bytes.NewReader(x.body))
	if err != nil {
		return nil, transient(0, fmt.Errorf("%s: building request: %w", x.op, err))
	}
	maps.Copy(req.Header, x.header)
	req.Header.Set("Accept", "application/json")
	if x.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := h.http.Do(req)
	if err != nil {
		// net/http strips any password from the URL in its errors; the
		// secrets travel in headers and never appear.
		return nil, transient(0, h.callError(parent, call, x.op, err))
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK && (x.accepted == 0 || resp.StatusCode != x.accepted) {
		return nil, statusError(x.op, resp, h.urlSetting, x.secrets...)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	switch {
	case err != nil:
		return nil, transient(resp.StatusCode, h.callError(parent, call, x.op+": reading answer", err))
	case int64(len(data)) > maxBody:
		return nil, invalid(fmt.Errorf("%s: answer is larger than %d bytes (DASHCACHE_PROVIDER_MAX_BYTES)", x.op, maxBody))
	case !utf8.Valid(data):
		return nil, invalid(fmt.Errorf("%s: answer is not valid UTF-8: %s", x.op, snippet(data, x.secrets...)))
	}
	return data, nil
}

// callError describes a failed round trip, saying so when the call's own
// timeout (rather than the caller's parent context) ended it.
func (h *httpBackend) callError(parent, call context.Context, op string, err error) error {
	if parent.Err() == nil && errors.Is(call.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer within %s: %w", op, h.timeout, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// statusError classifies an HTTP back end's answer that is not a success:
// rate_limited on 429 (with RetryAfter), permanent on a redirect (never
// followed) and any other 4xx, transient on the rest. The error quotes the
// answer's start, or its message if it is {"error": "..."} (the provider
// contract's and Cube's form), without secrets; urlSetting names where the
// URL is configured.
func statusError(op string, resp *http.Response, urlSetting string, secrets ...string) *dashcache.ProviderError {
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 4*snippetLen))
	var answer struct{ Error *string }
	if json.Unmarshal(head, &answer) == nil && answer.Error != nil {
		head = []byte(*answer.Error)
	}
	err := fmt.Errorf("%s: %s: %s", op, resp.Status, snippet(head, secrets...))
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests:
		return rateLimited(resp, err)
	case code >= 300 && code < 400:
		// Not followed: the token would go to whatever host it names, and
		// the answer there would be cached as the report.
		to := "no Location"
		if loc, lerr := resp.Location(); lerr == nil {
			to = "host " + strconv.Quote(loc.Host)
		}
		return &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Status: code,
			Err: fmt.Errorf("%s: %s redirects to %s; redirects are not followed (check %s)", op, resp.Status, to, urlSetting)}
	case code >= 400 && code < 500:
		return &dashcache.ProviderError{Outcome: dashcache.OutcomePermanent, Status: code, Err: err}
	default:
		// 5xx, and anything the contract does not name (1xx, 2xx other
		// than 200): worth another try later.
		return transient(code, err)
	}
}

// rateLimited is the failure of a 429: rate_limited, for as long as its
// Retry-After says.
func rateLimited(resp *http.Response, err error) *dashcache.ProviderError {
	now := time.Now()
	if d, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
		now = d // an HTTP-date in Retry-After is relative to the server's clock
	}
	return &dashcache.ProviderError{
		Outcome:    dashcache.OutcomeRateLimited,
		Status:     resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
		Err:        err,
	}
}

// snippet returns the start of a body for logs: one line, printable, short,
// and without any of secrets should the platform echo one.
func snippet(b []byte, secrets ...string) string {
	// Cut long bodies early, but not through a secret that starts in the part kept.
	longest := 0
	for _, sec := range secrets {
		longest = max(longest, len(sec))
	}
	if n := 4*snippetLen + longest; len(b) > n {
		b = b[:n]
	}
	s := strings.ToValidUTF8(string(b), "?")
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	s = strings.TrimSpace(strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s))
	if r := []rune(s); len(r) > snippetLen {
		s = string(r[:snippetLen]) + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return strconv.Quote(s)
}

// parseRetryAfter reads a Retry-After value, in seconds or as an HTTP-date
// relative to now. Missing, unreadable or non-positive values give
// DefaultRetryAfter; values above MaxRetryAfter are capped.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	var d time.Duration
	// An integer out of int64's range comes back clamped, with ErrRange.
	if n, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	if d <= 0 {
		return DefaultRetryAfter
	}
	return min(d, MaxRetryAfter)
}

// drainClose reads a little of what is left of body, so that the connection
// can be reused, and closes it.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// invalid is a 200 whose body cannot be stored.
func invalid(err error) *dashcache.ProviderError {
	return &dashcache.ProviderError{Outcome: dashcache.OutcomeInvalid, Status: http.StatusOK, Err: err}
}

func transient(status int, err error) *dashcache.ProviderError {
	return &dashcache.ProviderError{Outcome: dashcache.OutcomeTransient, Status: status, Err: err}
}
