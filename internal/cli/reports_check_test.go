package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dashcache/dashcache/internal/sqltest"
	"github.com/dashcache/dashcache/provider"
	"github.com/jackc/pgx/v5"
)

// TestReportsCheck: dashcache reports check prepares each SQL report on the
// server without running it, and proves an http back end's url and token
// with GET /customers: a line per report, and exit 1 naming how many are
// not ready. (provider's TestReportsCheckHTTPBackends checks Cube's and
// Metabase's.)
func TestReportsCheck(t *testing.T) {
	dsn := sqltest.Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE sales (customer text, day date, amount numeric(12,2), spot point)`); err != nil {
		t.Fatal(err)
	}
	bi := provider.NewSimulator(provider.SimConfig{Token: testSecret})
	up := httptest.NewServer(bi.Handler())
	defer up.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	catalogue := filepath.Join(t.TempDir(), "reports.yaml")
	if err := os.WriteFile(catalogue, []byte(fmt.Sprintf(`
backends:
  warehouse: {type: postgres, dsn_env: WAREHOUSE_DSN}
  legacy: {type: http, url: %q, token_env: LEGACY_TOKEN}
  gone: {type: http, url: %q}
reports:
  revenue: {backend: warehouse, query: "SELECT day, sum(amount) AS revenue FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to GROUP BY day"}
  typo: {backend: warehouse, query: "SELEC day FROM sales WHERE customer = @customer"}
  spots: {backend: warehouse, query: "SELECT spot FROM sales WHERE customer = @customer"}
  totals: {backend: legacy}
  old: {backend: gone}
`, up.URL, down.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DASHCACHE_REPORTS_FILE": catalogue, "WAREHOUSE_DSN": dsn, "LEGACY_TOKEN": testSecret}
	var out strings.Builder
	err = Run(ctx, []string{"reports", "check"}, func(k string) string { return env[k] }, &out, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "3 of 5 reports are not ready") {
		t.Errorf("reports check: %v, want 3 of 5 not ready", err)
	}
	t.Logf("dashcache reports check:\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"FAIL old on gone (http): BI platform: transient: GET /customers: ",
		"ok   revenue on warehouse (postgres): day date, revenue numeric",
		"FAIL spots on warehouse (postgres): ",
		"ok   totals on legacy (http): GET /customers lists 3 customers: the url and the token are right",
		"FAIL typo on warehouse (postgres): ",
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s\nwant %d lines", out.String(), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want it to start %q", i+1, lines[i], w)
		}
	}
	if !strings.Contains(lines[0], strings.TrimPrefix(down.URL, "http://")) {
		t.Errorf("the failure of an http back end does not name where it is: %s", lines[0])
	}
	if bi.Calls() != 0 {
		t.Errorf("the check made %d report calls at the http back end, want none", bi.Calls())
	}
	if !strings.Contains(lines[2], "spot") || !strings.Contains(lines[2], "point") || !strings.Contains(lines[4], "42601") {
		t.Errorf("the failures do not say what is wrong:\n%s\n%s", lines[2], lines[4])
	}
	if strings.Contains(out.String(), dsn) || strings.Contains(out.String(), testSecret) {
		t.Error("the output holds the DSN or the token")
	}
}
