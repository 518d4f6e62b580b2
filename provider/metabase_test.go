package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

const testAPIKey = "mb_SECRETKEY0123456789"

// fakeMetabase is a Metabase card query endpoint written from Metabase's
// API: POST /api/card/{id}/query with {"parameters": [...]}, authenticated
// by x-api-key. Like Metabase, it refuses a parameter that names no
// template tag of the card, and ignores one whose target is of the other
// kind ("variable" for a Text variable, "dimension" for a Field Filter).
type fakeMetabase struct {
	card int
	tags map[string]string // template tag -> "variable" or "dimension"
	// optional are the variables that are not required (the card's
	// GET /api/card/{id} says so).
	optional map[string]bool
	// answer writes the answer; nil: answerRows.
	answer func(w http.ResponseWriter, values map[string]string)

	mu        sync.Mutex
	calls     int
	cardReads int // GET /api/card/{id}
	bodies    []string
	lastVals  map[string]string
}

func (f *fakeMetabase) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("x-api-key") != testAPIKey {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "Unauthenticated")
		return
	}
	if r.Method == http.MethodGet && r.URL.Path == fmt.Sprintf("/api/card/%d", f.card) {
		f.mu.Lock()
		f.cardReads++
		f.mu.Unlock()
		f.serveCard(w)
		return
	}
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != fmt.Sprintf("/api/card/%d/query", f.card) {
		http.Error(w, "Not found.", http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Parameters []struct {
			Type   string
			Target []json.RawMessage
			Value  string
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "bad JSON", http.StatusBadRequest)
		return
	}
	values := map[string]string{}
	for _, p := range req.Parameters {
		var kind string
		var tag []string
		if len(p.Target) != 2 || json.Unmarshal(p.Target[0], &kind) != nil || json.Unmarshal(p.Target[1], &tag) != nil || len(tag) != 2 || tag[0] != "template-tag" {
			http.Error(w, `{"message":"bad target"}`, http.StatusBadRequest)
			return
		}
		want, ok := f.tags[tag[1]]
		if !ok {
			http.Error(w, fmt.Sprintf(`{"message":"Invalid parameter: Card %d does not have a template tag named %q."}`, f.card, tag[1]), http.StatusBadRequest)
			return
		}
		if kind == want {
			values[tag[1]] = p.Type + " " + p.Value
		}
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, string(body))
	f.lastVals = values
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if f.answer != nil {
		f.answer(w, values)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	var echo string // the value the Text variable is bound to
	for tag, kind := range f.tags {
		if kind == "variable" {
			echo = values[tag]
		}
	}
	customer, _ := json.Marshal(echo)
	fmt.Fprintf(w, `{"data":{"rows":[["2024-01-02",12.50,%s,null],["2024-01-03",1e3,"x",{"a":[1,2]}]],`+
		`"cols":[{"name":"z_day","display_name":"Day"},{"name":"a_revenue","display_name":"Revenue"},{"name":"customer","display_name":"Customer"},{"name":"extra","display_name":"Extra"}]},`+
		`"row_count":2,"status":"completed"}`, customer)
}

// serveCard answers GET /api/card/{id}: the card's native query and its
// template tags, a "variable" as a Text variable, a "dimension" as a Field
// Filter.
func (f *fakeMetabase) serveCard(w http.ResponseWriter) {
	tags := map[string]any{}
	for name, kind := range f.tags {
		typ := "text"
		if kind == "dimension" {
			typ = "dimension"
		}
		tags[name] = map[string]any{"name": name, "type": typ, "required": !f.optional[name]}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": f.card, "dataset_query": map[string]any{
		"type": "native", "native": map[string]any{"query": "SELECT ...", "template-tags": tags}}})
}

// seen returns the calls so far, the request bodies of the queries and the
// values bound by the last one.
func (f *fakeMetabase) seen() (int, []string, map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.bodies, f.lastVals
}

func newFakeMetabase(t *testing.T, f *fakeMetabase, cfg MetabaseConfig) *Metabase {
	t.Helper()
	if f.card == 0 {
		f.card = 42
	}
	if f.tags == nil {
		f.tags = map[string]string{"customer": "variable", "range": "dimension"}
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg.URL = cmpOr(cfg.URL, srv.URL+"/")
	cfg.APIKey = cmpOr(cfg.APIKey, testAPIKey)
	if cfg.Reports == nil {
		cfg.Reports = map[string]MetabaseReport{"revenue": {Card: f.card}}
	}
	cfg.HTTPClient = srv.Client()
	m, err := NewMetabase(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMetabaseQuery(t *testing.T) {
	t.Parallel()
	f := &fakeMetabase{card: 7, tags: map[string]string{"client": "variable", "period": "dimension"}}
	m := newFakeMetabase(t, f, MetabaseConfig{Reports: map[string]MetabaseReport{
		"revenue": {Card: 7, CustomerParameter: "client", RangeParameter: "period"},
	}})
	customer := `ac"me}],{\u2028<&>` + "\t"
	got, err := m.Query(context.Background(), reportKey("revenue", customer, "2024-01-01", "2024-01-31"))
	if err != nil {
		t.Fatal(err)
	}
	_, bodies, bound := f.seen()
	if want := map[string]string{"client": "category " + customer, "period": "date/range 2024-01-01~2024-01-31"}; fmt.Sprint(bound) != fmt.Sprint(want) {
		t.Errorf("Metabase bound %q, want %q", bound, want)
	}
	wantBody := `{"parameters":[{"type":"category","target":["variable",["template-tag","client"]],"value":` + mustJSON(t, customer) +
		`},{"type":"date/range","target":["dimension",["template-tag","period"]],"value":"2024-01-01~2024-01-31"}]}`
	if len(bodies) != 1 || bodies[0] != wantBody {
		t.Errorf("request bodies\n%q\nwant\n%s", bodies, wantBody)
	}
	want := `[{"z_day":"2024-01-02","a_revenue":12.50,"customer":` + mustJSON(t, "category "+customer) + `,"extra":null},` +
		`{"z_day":"2024-01-03","a_revenue":1e3,"customer":"x","extra":{"a":[1,2]}}]`
	if string(got) != want {
		t.Errorf("report\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(got) {
		t.Errorf("report is not JSON: %s", got)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMetabaseNoRows(t *testing.T) {
	t.Parallel()
	f := &fakeMetabase{answer: func(w http.ResponseWriter, _ map[string]string) {
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, `{"data":{"rows":[],"cols":[{"name":"day"}]},"status":"completed"}`)
	}}
	m := newFakeMetabase(t, f, MetabaseConfig{})
	got, err := m.Query(context.Background(), january("revenue"))
	if err != nil || string(got) != "[]" {
		t.Errorf("Query = %s, %v; want [], nil", got, err)
	}
}

func TestMetabaseQueryClassifies(t *testing.T) {
	t.Parallel()
	answer := func(status int, header map[string]string, body string) func(http.ResponseWriter, map[string]string) {
		return func(w http.ResponseWriter, _ map[string]string) {
			for k, v := range header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	big := `{"data":{"rows":[["` + strings.Repeat("x", 2000) + `"]],"cols":[{"name":"a"}]},"status":"completed"}`
	for _, tc := range []struct {
		name       string
		answer     func(http.ResponseWriter, map[string]string)
		maxBody    int64
		want       dashcache.ProviderOutcome
		status     int
		retryAfter time.Duration
		code       string
		says       string
	}{
		{name: "failed", answer: answer(202, nil, `{"status":"failed","error":"ERROR: relation \"sales\" does not exist (key `+testAPIKey+`)","error_type":"invalid-query","data":{"rows":[],"cols":[]}}`),
			want: dashcache.OutcomePermanent, code: "invalid-query", says: `relation \"sales\" does not exist`},
		// Metabase's server errors are an outage behind it: retried, and
		// counted by the back end's breaker; its client errors are the
		// card's own, and so are permanent. A type it does not give, or
		// one this version does not know, is taken for an outage.
		{name: "failed: db", answer: answer(202, nil, `{"status":"failed","error":"Connection to warehouse:5432 refused","error_type":"db"}`),
			want: dashcache.OutcomeTransient, code: "db", says: "Connection to warehouse:5432 refused"},
		{name: "failed: timed-out", answer: answer(202, nil, `{"status":"failed","error":"Timed out after 20.0 min.","error_type":"timed-out"}`),
			want: dashcache.OutcomeTransient, code: "timed-out", says: "Timed out"},
		{name: "failed: missing-required-parameter", answer: answer(202, nil, `{"status":"failed","error":"You'll need to pick a value for 'Customer' before this query can run.","error_type":"missing-required-parameter"}`),
			want: dashcache.OutcomePermanent, code: "missing-required-parameter", says: "pick a value"},
		{name: "failed: missing-required-permissions", answer: answer(202, nil, `{"status":"failed","error":"You do not have permissions to run this query.","error_type":"missing-required-permissions"}`),
			want: dashcache.OutcomePermanent, code: "missing-required-permissions", says: "permissions"},
		{name: "failed: error_type missing", answer: answer(202, nil, `{"status":"failed","error":"java.lang.OutOfMemoryError"}`),
			want: dashcache.OutcomeTransient, code: "", says: "OutOfMemoryError"},
		{name: "failed: unknown error_type", answer: answer(202, nil, `{"status":"failed","error":"boom","error_type":"some-new-type"}`),
			want: dashcache.OutcomeTransient, code: "some-new-type", says: "boom"},
		{name: "401", answer: answer(401, nil, "Unauthenticated"), want: dashcache.OutcomePermanent, status: 401},
		{name: "403", answer: answer(403, nil, "You don't have permissions to do that."), want: dashcache.OutcomePermanent, status: 403},
		{name: "404", answer: answer(404, nil, "Not found."), want: dashcache.OutcomePermanent, status: 404},
		{name: "400 echoing the key", answer: answer(400, nil, `{"message":"bad `+testAPIKey+`"}`), want: dashcache.OutcomePermanent, status: 400},
		{name: "429", answer: answer(429, map[string]string{"Retry-After": "7"}, "slow down"), want: dashcache.OutcomeRateLimited, status: 429, retryAfter: 7 * time.Second},
		{name: "500", answer: answer(500, nil, "boom"), want: dashcache.OutcomeTransient, status: 500},
		{name: "503", answer: answer(503, nil, ""), want: dashcache.OutcomeTransient, status: 503},
		{name: "redirect", answer: answer(302, map[string]string{"Location": "http://elsewhere.example/"}, ""), want: dashcache.OutcomePermanent, status: 302, says: "not followed"},
		{name: "2xx without data", answer: answer(202, nil, `{"status":"completed"}`), want: dashcache.OutcomeInvalid, says: "no completed data"},
		{name: "2xx without status", answer: answer(200, nil, `{"data":{"rows":[],"cols":[]}}`), want: dashcache.OutcomeInvalid},
		{name: "2xx not JSON", answer: answer(202, nil, `<html>`), want: dashcache.OutcomeInvalid},
		{name: "2xx not UTF-8", answer: answer(202, nil, "{\"data\":{\"rows\":[[\"\xff\"]],\"cols\":[{\"name\":\"a\"}]},\"status\":\"completed\"}"), want: dashcache.OutcomeInvalid, says: "not valid UTF-8"},
		{name: "truncated", answer: answer(202, nil, `{"data":{"rows":[[1]],"cols":[{"name":"a"}],"rows_truncated":2000},"status":"completed"}`), want: dashcache.OutcomeInvalid, says: "2000 rows"},
		{name: "short row", answer: answer(202, nil, `{"data":{"rows":[[1]],"cols":[{"name":"a"},{"name":"b"}]},"status":"completed"}`), want: dashcache.OutcomeInvalid},
		{name: "duplicate column", answer: answer(202, nil, `{"data":{"rows":[[1,2]],"cols":[{"name":"a"},{"name":"a"}]},"status":"completed"}`), want: dashcache.OutcomeInvalid},
		{name: "oversized", answer: answer(202, nil, big), maxBody: 1000, want: dashcache.OutcomeInvalid, says: "larger than 1000 bytes"},
		{name: "report oversized", answer: answer(202, nil, `{"data":{"rows":[[1],[2],[3],[4]],"cols":[{"name":"`+strings.Repeat("c", 20)+`"}]},"status":"completed"}`),
			maxBody: 100, want: dashcache.OutcomeInvalid, says: "report is larger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newFakeMetabase(t, &fakeMetabase{answer: tc.answer}, MetabaseConfig{MaxBodyBytes: tc.maxBody})
			got, err := m.Query(context.Background(), january("revenue"))
			if got != nil {
				t.Errorf("Query returned %s with its error", got)
			}
			pe := providerError(t, err, tc.want)
			if pe.Status != tc.status && tc.status != 0 || pe.RetryAfter != tc.retryAfter || pe.Code != tc.code {
				t.Errorf("status %d, retry after %s, code %q; want %d, %s, %q", pe.Status, pe.RetryAfter, pe.Code, tc.status, tc.retryAfter, tc.code)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), testAPIKey) {
				t.Errorf("error %q contains the API key", err)
			}
		})
	}
}

func TestMetabaseWrongKey(t *testing.T) {
	t.Parallel()
	f := &fakeMetabase{}
	m := newFakeMetabase(t, f, MetabaseConfig{APIKey: "mb_WRONGKEY"})
	_, err := m.Query(context.Background(), january("revenue"))
	pe := providerError(t, err, dashcache.OutcomePermanent)
	if pe.Status != http.StatusUnauthorized || strings.Contains(err.Error(), "mb_WRONGKEY") {
		t.Errorf("error %v: want a 401 without the key", err)
	}
}

// TestMetabaseParameterKinds: before a card is queried, its template tags
// are checked (GET /api/card/{id}): the customer's must be a required Text
// or Number variable, the range's a Field Filter. A card whose tags are of
// the other kinds (Metabase would ignore the parameters), whose customer
// variable is optional (it would return every customer's rows) or that
// lacks a tag is refused, permanently, and never queried.
func TestMetabaseParameterKinds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		f    *fakeMetabase
		says string
	}{
		{"other kinds", &fakeMetabase{tags: map[string]string{"customer": "dimension", "range": "variable"}}, `tag "customer" is of type "dimension"`},
		{"optional customer", &fakeMetabase{tags: map[string]string{"customer": "variable", "range": "dimension"}, optional: map[string]bool{"customer": true}}, `tag "customer" is not required`},
		{"no range tag", &fakeMetabase{tags: map[string]string{"customer": "variable"}}, `no Field Filter (dimension) tag "range"`},
		{"no customer tag", &fakeMetabase{tags: map[string]string{"range": "dimension"}}, `no template tag "customer"`},
	} {
		m := newFakeMetabase(t, tc.f, MetabaseConfig{})
		_, err := m.Query(context.Background(), january("revenue"))
		providerError(t, err, dashcache.OutcomePermanent)
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want it to say %s", tc.name, err, tc.says)
		}
		if calls, _, _ := tc.f.seen(); calls != 0 {
			t.Errorf("%s: the card was queried %d times", tc.name, calls)
		}
	}
}

// TestMetabaseVerifiedPerReport: a card found fit for one report's tags is
// not taken as fit for another report of the same card that names other
// tags; and a card's check is trusted for 5 minutes of the back end's
// clock, then read again.
func TestMetabaseVerifiedPerReport(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	f := &fakeMetabase{}
	m := newFakeMetabase(t, f, MetabaseConfig{Now: clock, Reports: map[string]MetabaseReport{
		"revenue": {Card: 42},
		"orders":  {Card: 42, CustomerParameter: "client"}, // no such tag on card 42
	}})
	if _, err := m.Query(t.Context(), january("revenue")); err != nil {
		t.Fatal(err)
	}
	_, err := m.Query(t.Context(), january("orders"))
	providerError(t, err, dashcache.OutcomePermanent)
	if !strings.Contains(err.Error(), `no template tag "client"`) {
		t.Errorf("orders: %v; want the card refused for its tag \"client\"", err)
	}
	if calls, _, _ := f.seen(); calls != 1 {
		t.Errorf("the card was queried %d times, want once (for revenue)", calls)
	}

	reads := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.cardReads
	}
	before := reads()
	if _, err := m.Query(t.Context(), january("revenue")); err != nil || reads() != before {
		t.Errorf("within 5 minutes: %v, %d card reads, want none", err, reads()-before)
	}
	mu.Lock()
	now = now.Add(5 * time.Minute)
	mu.Unlock()
	if _, err := m.Query(t.Context(), january("revenue")); err != nil || reads() != before+1 {
		t.Errorf("after 5 minutes: %v, %d card reads, want 1", err, reads()-before)
	}
}

func TestMetabaseTimeout(t *testing.T) {
	t.Parallel()
	f := &fakeMetabase{answer: func(w http.ResponseWriter, _ map[string]string) { time.Sleep(300 * time.Millisecond) }}
	m := newFakeMetabase(t, f, MetabaseConfig{Timeout: 50 * time.Millisecond})
	_, err := m.Query(context.Background(), january("revenue"))
	providerError(t, err, dashcache.OutcomeTransient)
	if !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("error %q does not say the call timed out", err)
	}
}

func TestMetabaseUnknownReport(t *testing.T) {
	t.Parallel()
	f := &fakeMetabase{}
	m := newFakeMetabase(t, f, MetabaseConfig{})
	for _, report := range []string{"", "revenu", "Revenue"} {
		_, err := m.Query(context.Background(), january(report))
		providerError(t, err, dashcache.OutcomePermanent)
		if !strings.Contains(err.Error(), "not one of this metabase back end's reports (revenue)") {
			t.Errorf("%q: error %q does not say which reports there are", report, err)
		}
	}
	if calls, _, _ := f.seen(); calls != 0 {
		t.Errorf("%d calls to Metabase for unknown reports, want 0", calls)
	}
}

func TestNewMetabaseChecks(t *testing.T) {
	t.Parallel()
	ok := map[string]MetabaseReport{"revenue": {Card: 1}}
	for _, tc := range []struct {
		name string
		cfg  MetabaseConfig
		says []string
	}{
		{"nothing", MetabaseConfig{}, []string{"URL is required", "APIKey is required", "at least one report"}},
		{"scheme", MetabaseConfig{URL: "ftp://mb", APIKey: "k", Reports: ok}, []string{"absolute http"}},
		{"password", MetabaseConfig{URL: "http://u:hunter2@mb/?x=1", APIKey: "k", Reports: ok}, []string{"must not have a query"}},
		{"reports", MetabaseConfig{URL: "http://mb", APIKey: "k", Reports: map[string]MetabaseReport{
			"Bad Name": {Card: 1}, "nocard": {}, "same": {Card: 2, CustomerParameter: "range"},
		}}, []string{`report "Bad Name": the name: a report name may contain only a-z 0-9 _ -`, "report nocard: Card must be", `report same: the customer and the range parameters are both "range"`}},
		{"negative", MetabaseConfig{URL: "http://mb", APIKey: "k", Reports: ok, Timeout: -1, MaxBodyBytes: -1}, []string{"Timeout must not be negative", "MaxBodyBytes must not be negative"}},
	} {
		_, err := NewMetabase(tc.cfg)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, s)
			}
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %q contains the URL's password", tc.name, err)
		}
	}
}

func TestOpenReportsMetabase(t *testing.T) {
	t.Parallel()
	f := &fakeMetabase{card: 9, tags: map[string]string{"who": "variable", "range": "dimension"}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cat, err := ParseCatalogue([]byte(fmt.Sprintf(`
backends:
  bi: {type: metabase, url: %q, api_key_env: MB_KEY}
reports:
  orders: {backend: bi, card: 9, customer_parameter: who}
`, srv.URL)))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MB_KEY": testAPIKey}
	r, err := OpenReports(context.Background(), cat, func(k string) string { return env[k] }, nil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	got, err := r.Query(context.Background(), january("orders"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, bound := f.seen(); !strings.Contains(string(got), `"customer":"category acme"`) || bound["range"] != "date/range 2024-01-01~2024-01-31" {
		t.Errorf("report %s, bound %q", got, bound)
	}
	r.backends["bi"].(*Metabase).http.CloseIdleConnections()

	_, err = OpenReports(context.Background(), cat, func(string) string { return "" }, nil, Limits{})
	if err == nil || !strings.Contains(err.Error(), "back end bi: the environment variable MB_KEY (api_key_env) is not set") {
		t.Errorf("OpenReports without the key: %v", err)
	}
}
