package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/cubetest"
)

// TestReportsCheck: Check says of each report whether it is ready: a SQL
// report prepared on its server (a PostgreSQL one with its columns), one
// its server refuses with the server's error, and each report of a back
// end that cannot be reached with why.
func TestReportsCheck(t *testing.T) {
	t.Parallel()
	pgDSN, _ := warehouse(t)
	shopDSN, _ := mysqlWarehouse(t)
	cat, err := ParseCatalogue([]byte(`
backends:
  warehouse: {type: postgres, dsn_env: WAREHOUSE_DSN}
  shop: {type: mysql, dsn_env: SHOP_DSN}
  gone: {type: mysql, dsn_env: GONE_DSN}
reports:
  revenue: {backend: warehouse, query: "SELECT day, sum(amount) AS revenue FROM sales WHERE customer = @customer GROUP BY day"}
  orders: {backend: shop, query: "SELECT day FROM sales WHERE customer = @customer"}
  typo: {backend: shop, query: "SELEC day FROM sales WHERE customer = @customer"}
  old: {backend: gone, query: "SELECT 1 AS n, @customer AS c"}
  older: {backend: gone, query: "SELECT 2 AS n, @customer AS c"}
`))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WAREHOUSE_DSN": pgDSN, "SHOP_DSN": shopDSN, "GONE_DSN": "root@tcp(127.0.0.1:1)/x?timeout=1s"}
	r, err := OpenReports(context.Background(), cat, func(k string) string { return env[k] }, nil, Limits{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := []Checked{
		{Report: "old", Backend: "gone (mysql)", Detail: "preparing the reports: connecting: "},
		{Report: "older", Backend: "gone (mysql)", Detail: "preparing the reports: connecting: "},
		{Report: "orders", Backend: "shop (mysql)", OK: true},
		{Report: "revenue", Backend: "warehouse (postgres)", Detail: "day date, revenue numeric", OK: true},
		{Report: "typo", Backend: "shop (mysql)", Detail: "(code 1064): report typo: preparing: "},
	}
	wantChecked(t, r.Check(context.Background()), want)
}

// wantChecked fails the test unless got is want, but for each detail,
// which need only contain want's.
func wantChecked(t *testing.T, got, want []Checked) {
	t.Helper()
	for _, g := range got {
		t.Logf("%v %s on %s: %s", g.OK, g.Report, g.Backend, g.Detail)
	}
	if len(got) != len(want) {
		t.Fatalf("checked %+v, want %d reports", got, len(want))
	}
	for i, w := range want {
		if g := got[i]; g.Report != w.Report || g.Backend != w.Backend || g.OK != w.OK || !strings.Contains(g.Detail, w.Detail) {
			t.Errorf("checked %+v,\nwant %+v (its detail containing %q)", g, w, w.Detail)
		}
	}
}

// TestReportsCheckHTTPBackends: Check proves each HTTP back end's url and
// secret without running a report's query: a Metabase card is read and
// checked as before a query, with the key; Cube must take a signed token
// at GET /cubejs-api/v1/meta; an http back end must list its customers
// with its token. A refused secret, a 5xx, a card unfit for its report:
// a failure that names the status or the tag. Nothing is queried.
func TestReportsCheckHTTPBackends(t *testing.T) {
	t.Parallel()
	const token = "legacy-token-0123456789"
	cube := &cubetest.Server{Secret: testCubeSecret}
	cubeSrv := cubetest.Start(t, cube)
	otherCube := &cubetest.Server{Secret: "another-secret"}
	otherCubeSrv := cubetest.Start(t, otherCube)
	mb := &fakeMetabase{card: 42, tags: map[string]string{"customer": "variable", "range": "dimension"}}
	mbSrv := httptest.NewServer(mb)
	t.Cleanup(mbSrv.Close)
	legacy := NewSimulator(SimConfig{Token: token})
	legacySrv := httptest.NewServer(legacy.Handler())
	t.Cleanup(legacySrv.Close)
	var queried atomic.Int64 // POST /query at the other http back ends
	status := func(code int) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/query" {
				queried.Add(1)
			}
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	noList, locked, broken := status(http.StatusNotFound), status(http.StatusUnauthorized), status(http.StatusServiceUnavailable)
	cubeQuery, _ := json.Marshal(testCubeQuery) // a YAML flow scalar
	cat, err := ParseCatalogue(fmt.Appendf(nil, `
backends:
  olap: {type: cube, url: %q, secret_env: CUBE_SECRET}
  olap-other: {type: cube, url: %q, secret_env: CUBE_SECRET}
  mb: {type: metabase, url: %q, api_key_env: MB_KEY}
  mb-wrong-key: {type: metabase, url: %q, api_key_env: MB_WRONG_KEY}
  legacy: {type: http, url: %q, token_env: LEGACY_TOKEN}
  wrong-token: {type: http, url: %q, token_env: WRONG_TOKEN}
  no-list: {type: http, url: %q}
  locked: {type: http, url: %q}
  broken: {type: http, url: %q}
reports:
  orders: {backend: olap, query: %s}
  orders-other: {backend: olap-other, query: %s}
  fit: {backend: mb, card: 42}
  loose: {backend: mb, card: 42, customer_parameter: who}
  keyless: {backend: mb-wrong-key, card: 42}
  totals: {backend: legacy}
  totals-wrong: {backend: wrong-token}
  unlisted: {backend: no-list}
  closed: {backend: locked}
  down: {backend: broken}
`, cubeSrv.URL, otherCubeSrv.URL, mbSrv.URL, mbSrv.URL, legacySrv.URL, legacySrv.URL, noList.URL, locked.URL, broken.URL, cubeQuery, cubeQuery))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CUBE_SECRET": testCubeSecret, "MB_KEY": testAPIKey, "MB_WRONG_KEY": "mb_WRONG",
		"LEGACY_TOKEN": token, "WRONG_TOKEN": "not-the-token-0123"}
	r, err := OpenReports(t.Context(), cat, func(k string) string { return env[k] }, nil, Limits{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := []Checked{
		{Report: "closed", Backend: "locked (http)", Detail: "GET /customers: 401 Unauthorized"},
		{Report: "down", Backend: "broken (http)", Detail: "GET /customers: 503 Service Unavailable"},
		{Report: "fit", Backend: "mb (metabase)", Detail: `card 42: "customer" is a required variable, "range" a Field Filter`, OK: true},
		{Report: "keyless", Backend: "mb-wrong-key (metabase)", Detail: "GET /api/card/42: 401 Unauthorized"},
		{Report: "loose", Backend: "mb (metabase)", Detail: `the card has no template tag "who" for the customer`},
		{Report: "orders", Backend: "olap (cube)", Detail: "Cube took the signed token: GET /cubejs-api/v1/meta lists 1 cubes", OK: true},
		{Report: "orders-other", Backend: "olap-other (cube)", Detail: "403 Forbidden: \"Invalid token\" (Cube refused the token: is secret_env's value Cube's CUBEJS_API_SECRET?)"},
		{Report: "totals", Backend: "legacy (http)", Detail: "GET /customers lists 3 customers: the url and the token are right", OK: true},
		{Report: "totals-wrong", Backend: "wrong-token (http)", Detail: "401 Unauthorized"},
		{Report: "unlisted", Backend: "no-list (http)", Detail: "answers HTTP, but GET /customers is 404 Not Found: the url and the token are not proven", OK: true},
	}
	got := r.Check(t.Context())
	wantChecked(t, got, want)
	for _, g := range got {
		for _, secret := range []string{testCubeSecret, testAPIKey, "mb_WRONG", token, "not-the-token-0123"} {
			if strings.Contains(g.Detail, secret) {
				t.Errorf("%s: detail %q holds a secret", g.Report, g.Detail)
			}
		}
	}
	if got := got[8].Detail; !strings.Contains(got, "the platform refused the token: is token_env's value its token?") {
		t.Errorf("a refused token: %q does not say what to check", got)
	}
	if got := got[3].Detail; !strings.Contains(got, "is api_key_env's value a Metabase API key?") {
		t.Errorf("a refused key: %q does not say what to check", got)
	}
	calls, _, _ := mb.seen()
	if n := len(cube.Loads()) + len(otherCube.Loads()); n != 0 || calls != 0 || legacy.Calls() != 0 || queried.Load() != 0 {
		t.Errorf("the check ran queries: %d at Cube, %d at Metabase, %d and %d at the http back ends", n, calls, legacy.Calls(), queried.Load())
	}
	if cube.Metas() != 1 {
		t.Errorf("Cube's meta was read %d times, want once for its back end", cube.Metas())
	}
}
