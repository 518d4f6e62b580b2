package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/cubetest"
)

const testCubeSecret = "cube-s3cret-Zq9"

// testCubeQuery uses every placeholder where Cube's query format puts the
// customer (a filter's values) and the range (a time dimension's
// dateRange), and holds strings that only resemble them.
const testCubeQuery = `{
  "measures": ["Orders.count", "Orders.total"],
  "filters": [
    {"member": "Orders.customer", "operator": "equals", "values": ["@customer"]},
    {"member": "Orders.note", "operator": "notEquals", "values": ["@customers", "x @customer", "@to "]}
  ],
  "timeDimensions": [{"dimension": "Orders.createdAt", "dateRange": ["@from", "@to"], "granularity": "day"}],
  "order": {"@customer": "asc"},
  "limit": 10000
}`

// newTestCube starts a fake Cube signed for with secret, answering with
// answer, and returns a Cube back end (secret testCubeSecret) on it.
func newTestCube(t *testing.T, secret string, answer func(http.ResponseWriter, int), cfg CubeConfig) (*Cube, *cubetest.Server) {
	t.Helper()
	fake := &cubetest.Server{Secret: secret, Answer: answer}
	srv := cubetest.Start(t, fake)
	cfg.URL = cmpOr(cfg.URL, srv.URL)
	cfg.Secret = cmpOr(cfg.Secret, testCubeSecret)
	if cfg.Reports == nil {
		cfg.Reports = map[string]string{"orders": testCubeQuery}
	}
	cfg.HTTPClient = srv.Client()
	c, err := NewCube(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, fake
}

func testCubeKey(customer string) dashcache.ReportKey {
	return dashcache.ReportKey{Report: "orders", Customer: customer,
		From: dashcache.CivilDay(2025, 1, 1), To: dashcache.CivilDay(2025, 1, 31)}
}

// TestCubeContinueWait: two "Continue wait" answers, then the data: one
// call for the caller (and for Measured, as for the guard), three requests
// at Cube with the same query and the same x-request-id.
func TestCubeContinueWait(t *testing.T) {
	t.Parallel()
	c, fake := newTestCube(t, testCubeSecret, cubetest.WaitThenData(2), CubeConfig{})
	m, err := NewMeasured(c, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}

	data, err := m.Query(t.Context(), testCubeKey("acme"))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != cubetest.Data {
		t.Errorf("data = %s, want Cube's data verbatim %s", data, cubetest.Data)
	}
	if got := testutil.ToFloat64(m.calls.WithLabelValues(string(dashcache.OutcomeOK))); got != 1 {
		t.Errorf("calls seen by Measured = %v, want 1", got)
	}
	seen := fake.Loads()
	if len(seen) != 3 {
		t.Fatalf("Cube saw %d requests, want 3", len(seen))
	}
	if err := cubetest.OneCall(seen); err != nil {
		t.Error(err)
	}

	// Another call is another request id.
	if _, err := c.Query(t.Context(), testCubeKey("acme")); err != nil {
		t.Fatal(err)
	}
	if seen := fake.Loads(); seen[3].RequestID == seen[0].RequestID {
		t.Errorf("two calls share x-request-id %q", seen[0].RequestID)
	}
}

// TestCubeToken: the fake verified the signature with the secret; the
// claims are the customer and a short life.
func TestCubeToken(t *testing.T) {
	t.Parallel()
	c, fake := newTestCube(t, testCubeSecret, cubetest.Finished, CubeConfig{Timeout: 5 * time.Second})
	before := time.Now().Add(-time.Second)
	if _, err := c.Query(t.Context(), testCubeKey("acme")); err != nil {
		t.Fatal(err)
	}
	claims := fake.Loads()[0].Claims
	if claims["customer"] != "acme" {
		t.Errorf("customer claim = %v, want acme", claims["customer"])
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		t.Fatalf("exp: %v, %v", exp, err)
	}
	if !exp.After(time.Now()) {
		t.Errorf("exp %s is not in the future", exp)
	}
	if latest := before.Add(5*time.Second + time.Minute + 2*time.Second); exp.After(latest) {
		t.Errorf("exp %s is later than the timeout + 1 min (%s)", exp, latest)
	}
}

// TestCubeSubstitution: the placeholders become the key's values as JSON
// strings, whatever the customer holds; look-alikes and object keys stay.
func TestCubeSubstitution(t *testing.T) {
	t.Parallel()
	c, fake := newTestCube(t, testCubeSecret, cubetest.Finished, CubeConfig{})
	customer := `ac"me\"}],{"member":"x` + "\n@to"
	if _, err := c.Query(t.Context(), testCubeKey(customer)); err != nil {
		t.Fatal(err)
	}
	s := fake.Loads()[0]
	q := s.Query
	filters := q["filters"].([]any)
	if got := filters[0].(map[string]any)["values"]; !jsonEqual(got, []any{customer}) {
		t.Errorf("customer filter values = %#v, want [%q]", got, customer)
	}
	if got := filters[1].(map[string]any)["values"]; !jsonEqual(got, []any{"@customers", "x @customer", "@to "}) {
		t.Errorf("look-alikes changed: %#v", got)
	}
	if len(filters) != 2 {
		t.Errorf("filters = %#v, want the report's 2", filters)
	}
	td := q["timeDimensions"].([]any)[0].(map[string]any)
	if got := td["dateRange"]; !jsonEqual(got, []any{"2025-01-01", "2025-01-31"}) {
		t.Errorf("dateRange = %#v", got)
	}
	if got := q["order"]; !jsonEqual(got, map[string]any{"@customer": "asc"}) {
		t.Errorf("order = %#v: an object key is not a value", got)
	}
	if !strings.Contains(s.Body, `"limit":10000`) {
		t.Errorf("body %s: limit not kept as written", s.Body)
	}
	if claims := s.Claims; claims["customer"] != customer {
		t.Errorf("customer claim = %q, want %q", claims["customer"], customer)
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// TestCubeFailures: each failure's outcome, and never the secret or the
// token in the error.
func TestCubeFailures(t *testing.T) {
	t.Parallel()
	status := func(code int, body string, headers ...string) func(http.ResponseWriter, int) {
		return func(w http.ResponseWriter, _ int) {
			for i := 0; i+1 < len(headers); i += 2 {
				w.Header().Set(headers[i], headers[i+1])
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, body)
		}
	}
	tests := []struct {
		name       string
		fakeSecret string
		answer     func(http.ResponseWriter, int)
		cfg        CubeConfig
		report     string
		want       dashcache.ProviderOutcome
		wantStatus int
		wantRetry  time.Duration
		wantInErr  string
		wantCalls  int
	}{
		{name: "wrong secret", fakeSecret: "not-the-secret", answer: cubetest.Finished,
			want: dashcache.OutcomePermanent, wantStatus: 403, wantInErr: "Invalid token"},
		{name: "429", answer: status(429, `{"error":"Too many requests"}`, "Retry-After", "7"),
			want: dashcache.OutcomeRateLimited, wantStatus: 429, wantRetry: 7 * time.Second, wantCalls: 1},
		{name: "500", answer: status(500, `{"error":"Error: connect ECONNREFUSED"}`),
			want: dashcache.OutcomeTransient, wantStatus: 500, wantInErr: "ECONNREFUSED", wantCalls: 1},
		{name: "400", answer: status(400, `{"error":"Unknown member: Orders.nope"}`),
			want: dashcache.OutcomePermanent, wantStatus: 400, wantInErr: "Unknown member", wantCalls: 1},
		{name: "400 echoing the secret", answer: func(w http.ResponseWriter, _ int) {
			w.WriteHeader(400)
			_, _ = fmt.Fprintf(w, `{"error":"bad secret %s"}`, testCubeSecret)
		}, want: dashcache.OutcomePermanent, wantStatus: 400, wantInErr: "[redacted]", wantCalls: 1},
		{name: "redirect", answer: status(302, "", "Location", "http://elsewhere.example/"),
			want: dashcache.OutcomePermanent, wantStatus: 302, wantCalls: 1},
		{name: "continue wait forever", answer: cubetest.Wait, cfg: CubeConfig{Timeout: 700 * time.Millisecond},
			want: dashcache.OutcomeTransient, wantInErr: "Continue wait"},
		{name: "oversized data", answer: cubetest.Finished, cfg: CubeConfig{MaxBodyBytes: 64},
			want: dashcache.OutcomeInvalid, wantStatus: 200, wantInErr: "larger than 64 bytes", wantCalls: 1},
		{name: "200 without data", answer: status(200, `{"query":{},"annotation":{}}`),
			want: dashcache.OutcomeInvalid, wantStatus: 200, wantCalls: 1},
		{name: "200 with another error", answer: status(200, `{"error":"something else"}`),
			want: dashcache.OutcomeInvalid, wantStatus: 200, wantInErr: "something else", wantCalls: 1},
		{name: "200 not JSON", answer: status(200, `<html>`),
			want: dashcache.OutcomeInvalid, wantStatus: 200, wantCalls: 1},
		{name: "unknown report", answer: cubetest.Finished, report: "nope",
			want: dashcache.OutcomePermanent, wantInErr: `no report named "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, fake := newTestCube(t, cmpOr(tt.fakeSecret, testCubeSecret), tt.answer, tt.cfg)
			k := testCubeKey("acme")
			k.Report = cmpOr(tt.report, k.Report)
			data, err := c.Query(t.Context(), k)
			if data != nil {
				t.Errorf("data = %s, want none", data)
			}
			pe := asProviderError(t, err)
			if pe.Outcome != tt.want || pe.Status != tt.wantStatus || pe.RetryAfter != tt.wantRetry {
				t.Errorf("error %v: outcome %s, status %d, retry after %s; want %s, %d, %s",
					err, pe.Outcome, pe.Status, pe.RetryAfter, tt.want, tt.wantStatus, tt.wantRetry)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not say %q", err, tt.wantInErr)
			}
			if strings.Contains(err.Error(), testCubeSecret) {
				t.Errorf("error %q holds the secret", err)
			}
			if tt.wantCalls > 0 && len(fake.Loads()) != tt.wantCalls {
				t.Errorf("Cube saw %d requests, want %d", len(fake.Loads()), tt.wantCalls)
			}
			if tt.report != "" && len(fake.Loads()) != 0 {
				t.Errorf("an unknown report reached Cube")
			}
		})
	}
}

// TestCubeContinueWaitCallerContext: the caller's context ends while Cube
// still answers "Continue wait": transient, and no request after.
func TestCubeContinueWaitCallerContext(t *testing.T) {
	t.Parallel()
	c, fake := newTestCube(t, testCubeSecret, cubetest.Wait, CubeConfig{})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := c.Query(ctx, testCubeKey("acme"))
	if pe := asProviderError(t, err); pe.Outcome != dashcache.OutcomeTransient {
		t.Errorf("error %v: outcome %s, want transient", err, pe.Outcome)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not say the context ended", err)
	}
	n := len(fake.Loads())
	if n < 2 {
		t.Errorf("Cube saw %d requests in 500ms of Continue wait, want at least 2", n)
	}
}

func TestNewCubeChecks(t *testing.T) {
	t.Parallel()
	_, err := NewCube(CubeConfig{
		URL:     "ftp://user:" + testCubeSecret + "@cube.example",
		Reports: map[string]string{"Bad Name": `{"measures":[]}`, "no-customer": `{"measures":["Orders.count"]}`, "not-json": `[`},
		Timeout: -time.Second,
	})
	if err == nil {
		t.Fatal("NewCube accepted a bad config")
	}
	for _, want := range []string{"URL", "Secret is required", "Timeout", `report "Bad Name": the name: a report name may contain only a-z 0-9 _ -`, "no-customer", "not-json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), testCubeSecret) {
		t.Errorf("error %q holds the URL's password", err)
	}
}

// TestParseCubeQuery: a Cube query is limited to the customer by its
// structure: an equals filter on "@customer" alone, where Cube ANDs it with
// the rest; "@customer" anywhere else, or only inside an "or", is refused.
func TestParseCubeQuery(t *testing.T) {
	t.Parallel()
	const customer = `{"member": "Orders.customer", "operator": "equals", "values": ["@customer"]}`
	const paid = `{"member": "Orders.status", "operator": "equals", "values": ["paid"]}`
	const notLimited, elsewhere, notJSON = "is not limited to the customer", `uses "@customer" outside its customer filter`, "is not a JSON object"
	for _, tc := range []struct {
		name, query, refused string // refused: "" if accepted
	}{
		{"the test query", testCubeQuery, ""},
		{"top level", `{"measures": ["Orders.count"], "filters": [` + paid + `, ` + customer + `]}`, ""},
		{"in an and", `{"measures": ["Orders.count"], "filters": [{"and": [` + paid + `, ` + customer + `]}]}`, ""},
		{"in an and in an and", `{"filters": [{"and": [{"and": [` + customer + `]}]}]}`, ""},
		{"no filter", `{"measures": ["Orders.count"]}`, notLimited},
		{"as a dimension", `{"measures": ["Orders.count"], "dimensions": ["@customer"]}`, notLimited},
		{"only in an or", `{"filters": [{"or": [` + customer + `, ` + paid + `]}]}`, notLimited},
		{"in an and in an or", `{"filters": [{"or": [{"and": [` + customer + `]}, ` + paid + `]}]}`, notLimited},
		{"notEquals", `{"filters": [{"member": "Orders.customer", "operator": "notEquals", "values": ["@customer"]}]}`, notLimited},
		{"contains", `{"filters": [{"member": "Orders.customer", "operator": "contains", "values": ["@customer"]}]}`, notLimited},
		{"another customer too", `{"filters": [{"member": "Orders.customer", "operator": "equals", "values": ["@customer", "globex"]}]}`, notLimited},
		{"no member", `{"filters": [{"operator": "equals", "values": ["@customer"]}]}`, notLimited},
		{"filters not a list", `{"filters": ` + customer + `}`, notLimited},
		{"an and beside other keys", `{"filters": [{"and": [` + customer + `], "or": [` + paid + `]}]}`, notLimited},
		{"a filter and an or", `{"filters": [` + customer + `, {"or": [` + customer + `, ` + paid + `]}]}`, elsewhere},
		{"a filter and a dimension", `{"dimensions": ["@customer"], "filters": [` + customer + `]}`, elsewhere},
		{"empty", " \n", "is required"},
		{"a list", `[` + customer + `]`, notJSON},
		{"null", `null`, "is not one JSON object"},
		{"two objects", `{"filters": [` + customer + `]} {}`, "is not one JSON object"},
	} {
		q, err := parseCubeQuery(tc.query)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.refused == "" && q == nil:
			t.Errorf("%s: no query returned", tc.name)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.refused)
		case (tc.refused == notLimited || tc.refused == elsewhere) && !strings.Contains(err.Error(), `"operator": "equals", "values": ["@customer"]`):
			t.Errorf("%s: error %q does not say what to write", tc.name, err)
		}
	}
}

// TestOpenReportsCube: a catalogue's cube back end answers its reports, its
// secret read through getenv; without the variable, the error names it.
func TestOpenReportsCube(t *testing.T) {
	t.Parallel()
	fake := &cubetest.Server{Secret: testCubeSecret}
	srv := cubetest.Start(t, fake)
	query, _ := json.Marshal(testCubeQuery) // a YAML flow scalar
	cat, err := ParseCatalogue(fmt.Appendf(nil, `
backends:
  cube: {type: cube, url: %q, secret_env: CUBE_SECRET}
reports:
  orders: {backend: cube, query: %s}
`, srv.URL, query))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CUBE_SECRET": testCubeSecret}
	r, err := OpenReports(t.Context(), cat, func(k string) string { return env[k] }, NewSimulator(SimConfig{}), Limits{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data, err := r.Query(t.Context(), testCubeKey("acme"))
	if err != nil || string(data) != cubetest.Data {
		t.Fatalf("Query: %s, %v; want %s", data, err, cubetest.Data)
	}
	if seen := fake.Loads(); len(seen) != 1 || seen[0].Claims["customer"] != "acme" {
		t.Errorf("Cube saw %+v, want one request for acme", seen)
	}

	_, err = OpenReports(t.Context(), cat, func(string) string { return "" }, NewSimulator(SimConfig{}), Limits{})
	if err == nil || !strings.Contains(err.Error(), "CUBE_SECRET") || !strings.Contains(err.Error(), "secret_env") {
		t.Errorf("OpenReports without the secret: %v; want an error naming CUBE_SECRET (secret_env)", err)
	}
}
