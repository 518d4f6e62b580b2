package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/sqltest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/store"
	"github.com/jackc/pgx/v5"
)

// TestStampedePostgres: 3 API servers and 2 workers, 300 concurrent reads
// over 3 reports of a PostgreSQL back end x 5 ranges: the database itself
// (pg_stat_statements) counts exactly one execution of each report's query
// per range, 10 in all, for the 2 reports keyed by range, and one per
// month, 2, for the one partitioned by month; and every reader is served
// the rows the query returns for its range (as the back end answers them
// when asked directly).
func TestStampedePostgres(t *testing.T) {
	const apis, workers, ranges, readers = 3, 2, 5, 300
	names := []string{"channels", "revenue", "monthly"}
	dsn, _ := sqltest.PostgresServer(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		`CREATE TABLE sales (customer text, day date, channel text, amount numeric(12,2))`,
		`INSERT INTO sales SELECT c, date '2025-01-01' + d, ch, (d * 7 + length(ch)) * 1.25
		   FROM unnest(ARRAY['acme','globex']) c, generate_series(0, 59) d, unnest(ARRAY['web','shop']) ch`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	reports := map[string]string{
		"revenue":  `SELECT day, sum(amount) AS revenue, count(*) AS orders FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to GROUP BY day ORDER BY day`,
		"channels": `SELECT channel, sum(amount) AS revenue FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to GROUP BY channel ORDER BY channel`,
		"monthly":  `SELECT s.day, sum(s.amount) AS revenue, count(s.amount) AS orders FROM sales s WHERE s.customer = @customer AND s.day BETWEEN @from AND @to GROUP BY s.day ORDER BY s.day`,
	}
	catalogue := filepath.Join(t.TempDir(), "reports.yaml")
	var file strings.Builder
	file.WriteString("backends:\n  warehouse: {type: postgres, dsn_env: WAREHOUSE_DSN, rate: 100}\nreports:\n")
	for name, sql := range reports {
		fmt.Fprintf(&file, "  %s:\n    backend: warehouse\n    query: %q\n", name, sql)
		if name == "monthly" {
			file.WriteString("    partition: {by: month, rows: \".\", day_field: day}\n")
		}
	}
	if err := os.WriteFile(catalogue, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_stat_statements_reset()"); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redistest.URL(t),
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_REPORTS_FILE": catalogue,
		"WAREHOUSE_DSN":          dsn,
	}
	for range workers {
		startRole(t, "worker", env)
	}
	var apiAddrs []string
	for range apis {
		apiAddrs = append(apiAddrs, startRole(t, "api", env))
	}
	keyOf := func(i int) (report, from, to string) {
		r := i % (len(names) * ranges)
		return names[r%len(names)], day(366 + r/len(names)*7), day(366 + r/len(names)*7 + 13) // two weeks of 2025, in January and February
	}
	bodies := make([]string, readers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range readers {
		wg.Go(func() {
			report, from, to := keyOf(i)
			<-start
			resp, err := readClient.Get(fmt.Sprintf("http://%s/v1/reports/%s?customer=acme&from=%s&to=%s&wait=30s", apiAddrs[i%apis], report, from, to))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Errorf("reader %d: %d %s", i, resp.StatusCode, b)
			}
			bodies[i] = string(b)
		})
	}
	close(start)
	wg.Wait()

	executions := func(like string) (n int64) {
		err := conn.QueryRow(ctx, `SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE $1`, like).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := executions("%FROM sales WHERE customer = $1%"); n != 2*ranges {
		t.Errorf("PostgreSQL executed the reports' queries %d times for %d reports x ranges, want exactly %d", n, 2*ranges, 2*ranges)
	}
	if n := executions("%FROM sales s WHERE s.customer = $1%"); n != 2 {
		t.Errorf("PostgreSQL executed the partitioned report's query %d times for %d ranges in January and February, want 2, a month each", n, ranges)
	}

	// What the back end answers when asked directly, for each key.
	pg, err := provider.NewPostgres(ctx, dsn, reports, provider.SQLConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for i, body := range bodies {
		report, from, to := keyOf(i)
		k, err := dashcache.ParseReportKey("acme", from, to, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		k.Report = report
		rows, err := pg.Query(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(body, `{"report":"`+report+`","customer":"acme","from":"`+from+`","to":"`+to+`"`) || !strings.HasSuffix(body, `"data":`+string(rows)+"}") {
			t.Fatalf("reader %d of %s: %s\nwant the rows %s", i, k, body, rows)
		}
	}
}

// TestWarehouseFailures: a report whose SQL does not parse costs one call
// and answers 502 naming the report and the SQLSTATE; a query that runs
// past the call's timeout is cancelled on the server, a transient failure,
// and retried by the worker until it answers; the warehouse stopped
// mid-run opens its own back end's breaker (misses of its reports: 503),
// while a report of another back end is still filled (counted at its BI
// server).
func TestWarehouseFailures(t *testing.T) {
	dsn, stopWarehouse := sqltest.PostgresServer(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`CREATE TABLE sales (customer text, day date, amount numeric(12,2))`,
		`CREATE TABLE delay (seconds float8)`, `INSERT INTO delay VALUES (30)`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.Close(ctx)
	legacy := newBIServer(t, 0, "")
	catalogue := filepath.Join(t.TempDir(), "reports.yaml")
	if err := os.WriteFile(catalogue, []byte(fmt.Sprintf(`
backends:
  warehouse: {type: postgres, dsn_env: WAREHOUSE_DSN}
  legacy: {type: http, url: %q}
reports:
  revenue: {backend: warehouse, query: "SELECT day, sum(amount) AS revenue FROM sales WHERE customer = @customer AND day BETWEEN @from AND @to GROUP BY day"}
  typo: {backend: warehouse, query: "SELEC day FROM sales WHERE customer = @customer"}
  slow: {backend: warehouse, query: "SELECT @customer::text AS customer, pg_sleep((SELECT seconds FROM delay))::text AS slept"}
  totals: {backend: legacy}
`, legacy.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	redisURL, rdb := redistest.URLClient(t)
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redisURL,
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_REPORTS_FILE": catalogue,
		"WAREHOUSE_DSN":          dsn,
		// The slow report's first call ends at its statement_timeout.
		"DASHCACHE_PROVIDER_TIMEOUT": "2s",
	}
	worker := startRole(t, "worker", env)
	api := startRole(t, "api", env)
	readOf := func(report, customer string) read {
		return getPath(t, api, "/v1/reports/"+report, customer, "2025-01-01", "2025-01-31", "20s")
	}

	if r := readOf("typo", "acme"); r.status != http.StatusBadGateway || !strings.Contains(r.body, "report typo") || !strings.Contains(r.body, "42601") {
		t.Errorf("a report whose SQL does not parse: %d %s; want 502 naming the report and 42601", r.status, r.body)
	}
	if n := scrape(t, worker, `dashcache_provider_calls_total{outcome="permanent"}`); n != 1 {
		t.Errorf("%v permanent calls, want 1", n)
	}
	if r := readOf("revenue", "acme"); r.status != http.StatusOK {
		t.Fatalf("revenue before the warehouse stops: %d %s", r.status, r.body)
	}

	transient := `dashcache_provider_calls_total{outcome="transient"}`
	if r := getPath(t, api, "/v1/reports/slow", "acme", "2025-01-01", "2025-01-31", "0s"); r.status != http.StatusAccepted {
		t.Errorf("a query past the timeout: %d %s; want 202, the fill still going", r.status, r.body)
	}
	wait.For(t, "the slow query's call to time out", 30*time.Second, func() bool { return scrape(t, worker, transient) == 1 })
	if _, err := conn.Exec(ctx, `UPDATE delay SET seconds = 0`); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "the worker's retry to answer", 60*time.Second, func() bool {
		r := readOf("slow", "acme")
		if r.status != http.StatusOK && r.status != http.StatusAccepted {
			t.Fatalf("the slow report while it is retried: %d %s", r.status, r.body)
		}
		return r.status == http.StatusOK && strings.Contains(r.body, `"data":[{"customer":"acme","slept":""}]`)
	})
	var sleeping int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()`).Scan(&sleeping); err != nil || sleeping != 0 {
		t.Errorf("%d statements still sleeping on the server (%v); want the timed-out one cancelled", sleeping, err)
	}
	if n, ok := scrape(t, worker, transient), scrape(t, worker, `dashcache_report_calls_total{outcome="ok",report="slow"}`); n != 1 || ok != 1 {
		t.Errorf("slow: %v transient and %v ok calls; want 1 and 1 (the retry)", n, ok)
	}

	stopWarehouse()
	guards := store.New(rdb).Guards
	for _, c := range []string{"c1", "c2", "c3"} { // the breaker wants 2 customers' failures
		getPath(t, api, "/v1/reports/revenue", c, "2025-01-01", "2025-01-31", "0s")
	}
	wait.For(t, "the warehouse's breaker to open", 60*time.Second, func() bool {
		left, err := guards.BreakerOpen(ctx, "warehouse")
		return err == nil && left > 0
	})
	if r := readOf("revenue", "c4"); r.status != http.StatusServiceUnavailable || r.retryAfter == "" || !strings.Contains(r.body, "back end warehouse (of report revenue)") {
		t.Errorf("a miss of the warehouse's report while its breaker is open: %d %s; want 503 with Retry-After, naming the back end", r.status, r.body)
	}
	if left, err := guards.BreakerOpen(ctx, ""); err != nil || left != 0 {
		t.Errorf("the default back end's breaker: %s, %v; want closed", left, err)
	}
	if r := readOf("totals", "acme"); r.status != http.StatusOK || legacy.calls.Load() != 1 {
		t.Errorf("a report of the other back end: %d %s, %d calls at its BI server; want 200 and 1", r.status, r.body, legacy.calls.Load())
	}
}
