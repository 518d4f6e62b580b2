package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/client"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// Example reads a report twice: the first read waits for it to be
// computed, the second revalidates the copy the client kept.
func Example() {
	url, stop := startDashcache()
	defer stop()

	c, err := client.New(client.Config{BaseURL: url, APIKey: "reader-key-0123456789"})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rep, err := c.Get(ctx, "", "acme", "2025-01-01", "2025-01-31")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s %s..%s, computed at %s, %s\n", rep.Customer, rep.From, rep.To, rep.ComputedAt.Format(time.RFC3339), rep.XCache)
	fmt.Printf("data: %s\n", rep.Data)

	again, err := c.Get(ctx, "", "acme", "2025-01-01", "2025-01-31")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("again: %s, revalidated %t, same body %t\n", again.XCache, again.Revalidated, string(again.Body) == string(rep.Body))
	// Output:
	// acme 2025-01-01..2025-01-31, computed at 2025-03-10T15:00:00Z, miss
	// data: {"revenue":1234,"orders":56}
	// again: hit, revalidated true, same body true
}

// ExampleClient_Get reads a report of the catalogue and decodes its data.
func ExampleClient_Get() {
	c, stop := exampleClient(client.Config{APIKey: "reader-key-0123456789"})
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rep, err := c.Get(ctx, "revenue", "acme", "2025-03-01", "2025-03-09")
	if err != nil {
		log.Fatal(err)
	}
	var data struct {
		Revenue int `json:"revenue"`
		Orders  int `json:"orders"`
	}
	if err := json.Unmarshal(rep.Data, &data); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("report %s of %s: revenue %d over %d orders\n", rep.Name, rep.Customer, data.Revenue, data.Orders)
	// Output:
	// report revenue of acme: revenue 1234 over 56 orders
}

// ExampleError tells the answers apart with errors.Is, and reads the
// server's detail and Retry-After with errors.As.
func ExampleError() {
	c, stop := exampleClient(client.Config{APIKey: "reader-key-0123456789"})
	defer stop()
	ctx := context.Background()

	_, err := c.Get(ctx, "", "globex", "2025-01-01", "2025-01-31")
	fmt.Println("forbidden:", errors.Is(err, client.ErrForbidden))

	_, err = c.Get(ctx, "", "acme", "2025-03-01", "2025-03-11")
	var e *client.Error
	if errors.Is(err, client.ErrBadRequest) && errors.As(err, &e) {
		fmt.Println("bad request:", e.Detail)
	}

	// The customer has used its BI calls of today: the Retry-After (until
	// midnight) is longer than Config.MaxRetryWait, so Get returns at once.
	_, err = c.Get(ctx, "", "spendthrift", "2025-01-01", "2025-01-31")
	if errors.Is(err, client.ErrRateLimited) && errors.As(err, &e) {
		fmt.Printf("rate limited for %s: %s\n", e.RetryAfter, e.Detail)
	}
	// Output:
	// forbidden: true
	// bad request: to (2025-03-11) is in the future; the latest allowed date is today, 2025-03-10
	// rate limited for 9h0m0s: customer spendthrift has used its 500 BI calls of today
}

// ExampleClient_Warm has yesterday's reports of two customers computed
// ahead of their readers.
func ExampleClient_Warm() {
	c, stop := exampleClient(client.Config{AdminToken: "admin-token-0123456789"})
	defer stop()
	res, err := c.Warm(context.Background(), client.WarmRequest{Customers: []string{"acme", "globex"}, Ranges: []string{"yesterday"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range res.Keys {
		fmt.Println(k.Result, k.Key)
	}
	fmt.Printf("%d enqueued, %d duplicate, %d skipped\n", res.Enqueued, res.Duplicate, res.Skipped)
	// Output:
	// enqueued acme|2025-03-09|2025-03-09
	// enqueued globex|2025-03-09|2025-03-09
	// 2 enqueued, 0 duplicate, 0 skipped
}

// ExampleClient_Invalidate tells the service that acme's data of one day
// changed, as the last step of a load.
func ExampleClient_Invalidate() {
	c, stop := exampleClient(client.Config{AdminToken: "admin-token-0123456789"})
	defer stop()
	res, err := c.Invalidate(context.Background(), client.InvalidateRequest{Customers: []string{"acme"}, From: "2025-03-09"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d matched, %d marked stale, %d refreshed\n", res.Matched, res.MarkedStale, res.Refreshed)
	// Output:
	// 3 matched, 3 marked stale, 1 refreshed
}

// exampleNow is the examples' clock: today is 2025-03-10.
var exampleNow = time.Date(2025, 3, 10, 15, 0, 0, 0, time.UTC)

// exampleClient starts the API server (startDashcache) and returns a client
// of it, cfg's BaseURL set, and a function that stops the server.
func exampleClient(cfg client.Config) (c *client.Client, stop func()) {
	cfg.BaseURL, stop = startDashcache()
	c, err := client.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	return c, stop
}

// startDashcache starts the API server of package api on miniredis, with
// its clock at exampleNow, the API key reader-key-0123456789 for customers
// acme and spendthrift, the admin token admin-token-0123456789, a report
// "revenue" in its catalogue, and exampleQueue for a queue. It returns the
// server's URL, and a function that stops it.
func startDashcache() (url string, stop func()) {
	mini, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: mini.Addr()})
	st := store.New(rdb)
	clock := func() time.Time { return exampleNow }
	usage, err := guard.New(guard.Config{State: st.Guards, Now: clock})
	if err != nil {
		log.Fatal(err)
	}
	keys, err := api.ParseAPIKeys("reader-key-0123456789=acme|spendthrift")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := api.New(api.Config{
		Cache: st.Cache, Queue: exampleQueue{st.Cache}, Usage: usage, Redis: st.Cache, Now: clock,
		Auth:    api.AuthConfig{APIKeys: keys, AdminToken: "admin-token-0123456789"},
		Reports: dashcache.Served{Named: []string{"revenue"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		log.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	return hs.URL, func() {
		hs.Close()
		srv.Shutdown(context.Background())
		rdb.Close()
		mini.Close()
	}
}

// exampleQueue stands for the task queue and its workers: a report asked
// for is computed at once, and written as a worker writes it (lock, fenced
// write, fill notification); customer spendthrift has used its daily
// budget. Warming enqueues every report; an invalidation answers fixed
// counts.
type exampleQueue struct{ cache *store.Cache }

func (q exampleQueue) Ensure(ctx context.Context, k dashcache.ReportKey) (bool, error) {
	if k.Customer == "spendthrift" {
		return false, &dashcache.Refusal{Reason: dashcache.ReasonBudget, RetryAfter: 9 * time.Hour,
			Detail: "customer spendthrift has used its 500 BI calls of today"}
	}
	l, err := q.cache.Obtain(ctx, k, time.Minute)
	if err != nil {
		return false, err
	}
	defer l.Release(ctx)
	return true, l.Fill(ctx, store.NewEntry(k, []byte(`{"revenue":1234,"orders":56}`), exampleNow, 0, time.Hour), 2*time.Hour)
}

func (exampleQueue) Warm(context.Context, dashcache.ReportKey, dashcache.Refresh) (bool, error) {
	return true, nil
}

func (exampleQueue) Invalidate(context.Context, dashcache.Changed, time.Duration) (dashcache.Invalidation, error) {
	return dashcache.Invalidation{Matched: 3, MarkedStale: 3, Refreshed: 1}, nil
}
