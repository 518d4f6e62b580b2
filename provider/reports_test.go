package provider

import (
	"context"
	"strings"
	"testing"
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
	got := r.Check(context.Background())
	if len(got) != len(want) {
		t.Fatalf("checked %+v, want %d reports", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Report != w.Report || g.Backend != w.Backend || g.OK != w.OK || !strings.Contains(g.Detail, w.Detail) {
			t.Errorf("checked %+v, want %+v (its detail containing %q)", g, w, w.Detail)
		}
	}
}
