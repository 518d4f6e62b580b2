package api_test

// The contract: every request that the tests of this package send through
// checkedClient or checkedTransport, and every answer to it, is checked
// against the OpenAPI document (api/openapi.yaml, served at GET
// /openapi.yaml), and a mismatch fails the test that sent it. TestMain then
// checks, after a run of the whole package, that every answer the document
// declares (path x method x status) was seen at least once, by the fast
// path and by net/http for the hits, and none that it does not declare.

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/front/fronttest"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	liberrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/responses"
	"github.com/pb33f/libopenapi-validator/router"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && wholeRun() {
		code = checkCoverage()
	}
	if code == 0 {
		if err := goleak.Find(fronttest.Leaks...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: Errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// wholeRun reports whether every test of the package ran: no -run, -skip
// or -fuzz picked some.
func wholeRun() bool {
	for _, name := range []string{"test.run", "test.skip", "test.fuzz"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

// route is an answer of the document: a path template, a method and a
// status. Two stand for the answers of no operation: any path the document
// does not list (404), and a method a listed path does not take (405).
type route struct {
	path, method string
	status       int
}

func (r route) String() string { return fmt.Sprintf("%s %s %d", r.method, r.path, r.status) }

var (
	unlistedPath   = route{"(a path not listed)", "(any method)", http.StatusNotFound}
	unlistedMethod = route{"(a listed path)", "(a method not listed)", http.StatusMethodNotAllowed}
)

// The paths under /monitoring/ but itself are the asynq UI's: only the
// guard's refusals there are the contract's.
const monitoringPath = "/monitoring/"

// contract is the document, loaded once, and the answers checked against it.
type contract struct {
	model    *v3.Document
	full     validator.Validator // requests and answers
	headless validator.Validator // answers to HEAD, which have no body
	router   router.Router
	schemas  schema_validation.SchemaValidator

	mu      sync.Mutex // validators are used one at a time
	seen    map[route]int
	viaFast map[route]int // answered by ServeFast
}

var loadContract = sync.OnceValues(func() (*contract, error) {
	doc, err := libopenapi.NewDocument(api.OpenAPI())
	if err != nil {
		return nil, err
	}
	m, err := doc.BuildV3Model()
	if err != nil {
		return nil, err
	}
	full, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	headless, errs := validator.NewValidator(doc, config.WithoutResponseBodyValidation())
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &contract{
		model: &m.Model, full: full, headless: headless,
		// Path only: the tests' servers listen on ports of their own.
		router:  router.NewRouter(&m.Model, router.WithPathOnlyMatching()),
		schemas: schema_validation.NewSchemaValidator(),
		seen:    map[route]int{}, viaFast: map[route]int{},
	}, nil
})

// theContract returns the contract, failing tb if the document does not load.
func theContract(tb testing.TB) *contract {
	tb.Helper()
	c, err := loadContract()
	if err != nil {
		tb.Fatalf("loading the OpenAPI document: %v", err)
	}
	return c
}

// check checks a request (with its body) and the answer to it (with its
// body, decoded) against the document. It returns the answer's route and
// what does not match; ui is true for an answer of the asynq UI's, which
// the document does not describe.
func (c *contract) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) (r route, ui bool, mismatches []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	status := resp.StatusCode
	if path := req.URL.Path; strings.HasPrefix(path, monitoringPath) && path != monitoringPath {
		// The UI's: its refusals are the guard's, as on /monitoring/.
		if status != http.StatusUnauthorized && status != http.StatusForbidden && status != http.StatusTooManyRequests {
			return route{}, true, nil
		}
		req = req.Clone(req.Context())
		req.Method, req.URL.Path, req.URL.RawPath = http.MethodGet, monitoringPath, ""
		reqBody = nil
		_, mismatches = c.check1(req, reqBody, resp, respBody)
		return route{}, true, mismatches
	}
	r, mismatches = c.check1(req, reqBody, resp, respBody)
	return r, false, mismatches
}

func (c *contract) check1(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) (route, []string) {
	status := resp.StatusCode
	v := c.full
	vreq := req.Clone(req.Context())
	if req.Method == http.MethodHead { // answered as GET, without the body
		vreq.Method, v = http.MethodGet, c.headless
	}
	vreq.Body, vreq.ContentLength = io.NopCloser(bytes.NewReader(reqBody)), int64(len(reqBody))
	vresp := *resp
	vresp.Body = io.NopCloser(bytes.NewReader(respBody))

	found, err := c.router.FindRoute(vreq)
	switch {
	case errors.Is(err, router.ErrMethodNotAllowed):
		allow := methods(found.PathItem)
		return unlistedMethod, c.fallback(vreq, &vresp, respBody, "MethodNotAllowed", func(h http.Header) []string {
			if got := h.Get("Allow"); got != allow {
				return []string{fmt.Sprintf("Allow is %q; the document's methods for %s are %q", got, found.Path, allow)}
			}
			return nil
		})
	case errors.Is(err, router.ErrPathNotFound):
		return unlistedPath, c.fallback(vreq, &vresp, respBody, "NotFound", nil)
	case err != nil:
		return route{}, []string{fmt.Sprintf("finding the operation: %v", err)}
	}
	r := route{found.Path, vreq.Method, status}

	var mismatches []string
	if ok, errs := v.ValidateHttpRequest(vreq); !ok && (status < 400 || status > 499) {
		// The document refuses the request; the server must too.
		mismatches = append(mismatches, fmt.Sprintf("the document refuses the request (%s), but it was answered %d", describe(errs), status))
	}
	if ok, errs := v.ValidateHttpResponse(vreq, &vresp); !ok {
		mismatches = append(mismatches, describe(errs))
	}
	return r, mismatches
}

// fallback checks an answer of no operation against the document's
// response component name, and with more, its other rules.
func (c *contract) fallback(req *http.Request, resp *http.Response, body []byte, name string, more func(http.Header) []string) []string {
	want := c.model.Components.Responses.GetOrZero(name)
	wantStatus := map[string]int{"NotFound": http.StatusNotFound, "MethodNotAllowed": http.StatusMethodNotAllowed}[name]
	if resp.StatusCode != wantStatus {
		return []string{fmt.Sprintf("the document lists no such operation, so the answer must be %d (#/components/responses/%s); it is %d", wantStatus, name, resp.StatusCode)}
	}
	var mismatches []string
	ct := resp.Header.Get("Content-Type")
	media, _, _ := mime.ParseMediaType(ct)
	mt := want.Content.GetOrZero(media)
	if mt == nil {
		mismatches = append(mismatches, fmt.Sprintf("Content-Type %q is not one of #/components/responses/%s", ct, name))
	} else if ok, errs := c.schemas.ValidateSchemaBytesWithVersion(mt.Schema.Schema(), body, 3.1); !ok {
		mismatches = append(mismatches, describe(errs))
	}
	if ok, errs := responses.ValidateResponseHeaders(req, resp, want.Headers, req.URL.Path, strconv.Itoa(resp.StatusCode)); !ok {
		mismatches = append(mismatches, describe(errs))
	}
	if more != nil {
		mismatches = append(mismatches, more(resp.Header)...)
	}
	return mismatches
}

// methods returns the methods a path item takes, as Allow names them: HEAD
// with GET.
func methods(p *v3.PathItem) string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		ops := map[string]*v3.Operation{http.MethodGet: p.Get, http.MethodHead: p.Get, http.MethodPost: p.Post, http.MethodPut: p.Put, http.MethodPatch: p.Patch, http.MethodDelete: p.Delete}
		if ops[m] != nil {
			out = append(out, m)
		}
	}
	return strings.Join(out, ", ")
}

func describe(errs []*liberrors.ValidationError) string {
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Message)
		if e.Reason != "" {
			b.WriteString(": " + e.Reason)
		}
		for _, f := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, " [%s", f.Reason)
			if f.FieldPath != "" {
				fmt.Fprintf(&b, " at %s", f.FieldPath)
			}
			b.WriteString("]")
		}
	}
	return b.String()
}

// record counts an answer seen, and whether the fast path gave it.
func (c *contract) record(r route, fast bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[r]++
	if fast {
		c.viaFast[r]++
	}
}

// declared returns every answer the document declares, and the two of no
// operation.
func (c *contract) declared() []route {
	out := []route{unlistedPath, unlistedMethod}
	for path, item := range c.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			for code := range op.Responses.Codes.KeysFromOldest() {
				status, _ := strconv.Atoi(code)
				out = append(out, route{path, strings.ToUpper(method), status})
			}
		}
	}
	return out
}

// fastAndSlow are the answers that both the fast path (L1 hits on
// fasthttp) and net/http give, and the tests must see from each.
var fastAndSlow = []route{
	{"/v1/reports", http.MethodGet, http.StatusOK},
	{"/v1/reports", http.MethodGet, http.StatusNotModified},
	{"/v1/reports/{name}", http.MethodGet, http.StatusOK},
	{"/v1/reports/{name}", http.MethodGet, http.StatusNotModified},
}

// checkCoverage reports, after a run of every test, the answers the
// document declares that no test saw, those seen that it does not declare,
// and the hits not seen from the fast path or from net/http. It returns
// the exit code: 1 if any.
func checkCoverage() int {
	c, err := loadContract()
	if err != nil {
		fmt.Fprintf(os.Stderr, "contract: %v\n", err)
		return 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	declared := c.declared()
	var problems []string
	for _, r := range declared {
		if c.seen[r] == 0 {
			problems = append(problems, fmt.Sprintf("declared by the document, seen by no test: %s", r))
		}
	}
	for r := range c.seen {
		if !slices.Contains(declared, r) {
			problems = append(problems, fmt.Sprintf("seen, not declared by the document: %s", r))
		}
	}
	for _, r := range fastAndSlow {
		if fast := c.viaFast[r]; fast == 0 || c.seen[r] == fast {
			problems = append(problems, fmt.Sprintf("%s: %d answers from the fast path, %d from net/http; want both", r, fast, c.seen[r]-fast))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		fmt.Fprintf(os.Stderr, "contract: the tests and api/openapi.yaml disagree:\n\t%s\n", strings.Join(problems, "\n\t"))
		return 1
	}
	total := 0
	for _, n := range c.seen {
		total += n
	}
	fmt.Fprintf(os.Stderr, "contract: %d answers checked against api/openapi.yaml; each of its %d answers seen\n", total, len(declared))
	return 0
}

// exchangeHeader numbers the requests checkedTransport sends, for the
// front to tell which the fast path answered (servedFast).
const exchangeHeader = "Dashcache-Test-Exchange"

var (
	exchanges  atomic.Int64
	servedFast sync.Map // exchange number -> true
)

// markFast notes that the fast path answered c's request.
func markFast(c *fasthttp.RequestCtx) {
	if id := c.Request.Header.Peek(exchangeHeader); len(id) > 0 {
		servedFast.Store(string(id), true)
	}
}

// checkedClient returns a client whose requests and answers are checked
// against the document: a mismatch fails tb.
func checkedClient(tb testing.TB) *http.Client {
	return &http.Client{Transport: checkedTransport(tb, http.DefaultTransport)}
}

// checkedTransport returns next, checking each request and answer against
// the document: a mismatch fails tb. Each answer counts for the coverage.
func checkedTransport(tb testing.TB, next http.RoundTripper) http.RoundTripper {
	return &checker{tb: tb, next: next, contract: theContract(tb), record: true}
}

type checker struct {
	tb       testing.TB
	next     http.RoundTripper
	contract *contract
	record   bool // count the answers for the coverage
}

func (ch *checker) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if reqBody, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	id := strconv.FormatInt(exchanges.Add(1), 10)
	out := req.Clone(req.Context())
	out.Header.Set(exchangeHeader, id)
	if reqBody != nil {
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(reqBody)), int64(len(reqBody))
	}
	resp, err := ch.next.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	_, fast := servedFast.LoadAndDelete(id)
	ch.checkAnswer(req, reqBody, resp, body, fast)
	return resp, nil
}

// checkAnswer checks an exchange, fails the test on a mismatch and counts
// the answer.
func (ch *checker) checkAnswer(req *http.Request, reqBody []byte, resp *http.Response, body []byte, fast bool) {
	if resp.Header.Get("Content-Encoding") == "gzip" && len(body) > 0 {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			ch.tb.Errorf("%s %s: a gzip body that does not decompress: %v", req.Method, req.URL.Path, err)
			return
		}
	}
	r, ui, mismatches := ch.contract.check(req, reqBody, resp, body)
	for _, m := range mismatches {
		ch.tb.Errorf("%s %s answered %d: not as api/openapi.yaml says: %s\n\tbody: %.300s", req.Method, req.URL.RequestURI(), resp.StatusCode, m, body)
	}
	if ch.record && !ui && req.Method != http.MethodHead {
		ch.contract.record(r, fast)
	}
}

// serveChecked serves req with h (not over HTTP: RemoteAddr and Host are
// the request's) and checks the exchange as checkedTransport does.
func serveChecked(tb testing.TB, h http.Handler, req *http.Request) *http.Response {
	tb.Helper()
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	resp := w.Result()
	body, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	ch := &checker{tb: tb, contract: theContract(tb), record: true}
	ch.checkAnswer(req, reqBody, resp, body, false)
	return resp
}
