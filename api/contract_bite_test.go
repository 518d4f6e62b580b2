package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// failures is a testing.TB that keeps the failures reported to it.
type failures struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (f *failures) Helper() {}

func (f *failures) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func (f *failures) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errs, "\n")
}

// TestContractBites: answers whose shape differs from the document's, served
// by a fake handler, fail the test that gets them through checkedClient, each
// with a message that names what differs; the right answer passes.
func TestContractBites(t *testing.T) {
	const read = "/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31"
	hit := map[string]string{"X-Cache": "hit", "ETag": `"9fa33d5e7e0acd54450a9647"`, "Age": "3", "Cache-Control": "private, max-age=3597"}
	report := `{"customer":"acme","from":"2025-01-01","to":"2025-01-31","computed_at":"2025-03-10T14:59:57Z","data":{"revenue":1}}`
	without := func(h map[string]string, name string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			if k != name {
				out[k] = v
			}
		}
		return out
	}
	for _, c := range []struct {
		name, method, target, body string // the request
		status                     int    // the answer
		contentType                string
		header                     map[string]string
		answer                     string
		want                       string // in the failure; "" for none
	}{
		{"the right answer", "GET", read, "", 200, "application/json", hit, report, ""},
		{"a report without computed_at", "GET", read, "", 200, "application/json", hit,
			`{"customer":"acme","from":"2025-01-01","to":"2025-01-31","data":{"revenue":1}}`, "missing property 'computed_at'"},
		{"a report with a field the document lacks", "GET", read, "", 200, "application/json", hit,
			strings.Replace(report, `"data"`, `"cost_usd":0.02,"data"`, 1), "additional properties 'cost_usd' not allowed"},
		{"a report whose date is no date", "GET", read, "", 200, "application/json", hit,
			strings.Replace(report, `"from":"2025-01-01"`, `"from":"01/01/2025"`, 1), "at $.from"},
		{"a hit without X-Cache", "GET", read, "", 200, "application/json", without(hit, "X-Cache"), report, "Required header 'X-Cache' is missing"},
		{"X-Cache of a value the document lacks", "GET", read, "", 200, "application/json", map[string]string{"X-Cache": "HIT", "ETag": `"9f"`, "Age": "3", "Cache-Control": "private, max-age=1"}, report, "header 'x-cache' failed to validate"},
		{"a named report without its name", "GET", "/v1/reports/revenue?customer=acme&from=2025-01-01&to=2025-01-31", "", 200, "application/json", hit, report, "missing property 'report'"},
		{"the default report with a name", "GET", read, "", 200, "application/json", hit, `{"report":"revenue",` + report[1:], "'not' failed"},
		{"202 without Retry-After", "GET", read + "&wait=0s", "", 202, "application/json", map[string]string{"Cache-Control": "no-store"}, `{"status":"pending"}`, "Required header 'Retry-After' is missing"},
		{"429 without Retry-After", "GET", read, "", 429, "application/problem+json", nil,
			`{"type":"about:blank","title":"Too Many Requests","status":429,"detail":"acme has too many reports on their way"}`, "Required header 'Retry-After' is missing"},
		{"an error as application/json", "GET", "/v1/reports?customer=", "", 400, "application/json", nil,
			`{"type":"about:blank","title":"Bad Request","status":400,"detail":"customer is required"}`, "content type 'application/json' of the GET response received has not been defined"},
		{"a problem without detail", "GET", "/v1/reports?customer=", "", 400, "application/problem+json", nil,
			`{"type":"about:blank","title":"Bad Request","status":400}`, "missing property 'detail'"},
		{"a problem whose status is not the answer's", "GET", "/v1/reports?customer=", "", 400, "application/problem+json", nil,
			`{"type":"about:blank","title":"Bad Request","status":500,"detail":"customer is required"}`, "value must be 400 at $.status"},
		{"a status the document does not declare", "GET", "/v1/usage", "", 500, "application/problem+json", nil,
			`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"oops"}`, "response code '500'"},
		{"counts as strings", "POST", "/v1/invalidate", `{"customers":["acme"],"from":"2025-01-20","to":"2025-01-20"}`, 200, "application/json", nil,
			`{"matched":"1","marked_stale":1,"refreshed":1,"apis":0,"apis_unanswered":0}`, "want integer at $.matched"},
		{"usage without refusals", "GET", "/v1/usage", "", 200, "application/json", map[string]string{"Cache-Control": "no-store"},
			`{"date":"2025-03-10","timezone":"UTC","daily_calls":0,"customers":[{"customer":"acme","calls":1}]}`, "missing property 'refused'"},
		{"a path the document does not list, answered", "GET", "/v2/reports", "", 200, "application/json", nil, `{}`, "the answer must be 404"},
		{"405 whose Allow is not the document's", "POST", read, "", 405, "application/problem+json", map[string]string{"Allow": "GET"},
			`{"type":"about:blank","title":"Method Not Allowed","status":405,"detail":"read with GET"}`, `Allow is "GET"`},
		{"a request the document refuses, served", "GET", "/v1/reports?customer=" + strings.Repeat("a", 65) + "&from=2025-01-01&to=2025-01-31&wait=0s", "", 202, "application/json",
			map[string]string{"Retry-After": "1", "Cache-Control": "no-store"}, `{"status":"pending"}`, "the document refuses the request"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", c.contentType)
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(c.status)
				w.Write([]byte(c.answer))
			}))
			defer fake.Close()
			got := &failures{TB: t}
			ch := &checker{tb: got, next: http.DefaultTransport, contract: theContract(t)} // not counted for the coverage
			req, _ := http.NewRequest(c.method, fake.URL+c.target, strings.NewReader(c.body))
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := (&http.Client{Transport: ch}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch msg := got.String(); {
			case c.want == "" && msg != "":
				t.Errorf("the right answer failed the test:\n%s", msg)
			case c.want != "" && msg == "":
				t.Errorf("the answer passed; want it to fail the test naming %q", c.want)
			case !strings.Contains(msg, c.want):
				t.Errorf("the failure does not name %q:\n%s", c.want, msg)
			case c.want != "":
				t.Logf("caught: %s", msg)
			}
		})
	}
}
