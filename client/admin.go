package client

import (
	"cmp"
	"context"

	"github.com/dashcache/dashcache"
)

// WarmRequest asks for the fill tasks of reports (POST /v1/warm): of each
// report of Reports (none: the default report), for each customer of
// Customers, over each range of Ranges or over From..To. At most 1000
// reports at once.
type WarmRequest struct {
	Customers []string `json:"customers"`
	// Reports are names of the catalogue; none: the default report.
	Reports []string `json:"reports,omitempty"`
	// Ranges are presets, computed by the server in its time zone:
	// "yesterday", "last_7_days", "last_30_days", "month_to_date",
	// "previous_month", "year_to_date". Or give From and To instead.
	Ranges []string `json:"ranges,omitempty"`
	// From and To name one range, YYYY-MM-DD, both included.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Force refreshes reports that are still fresh.
	Force bool `json:"force,omitempty"`
}

// What happened to a report of a warm, as in WarmedKey.Result.
const (
	WarmEnqueued  = dashcache.WarmEnqueued  // its fill task was enqueued
	WarmDuplicate = dashcache.WarmDuplicate // its fill task was queued or running already
	WarmSkipped   = dashcache.WarmSkipped   // the customer has used its daily budget
)

// WarmResult is the server's answer to a warm.
type WarmResult struct {
	// Keys are the reports, each with what happened to it, in the order
	// the server tried them.
	Keys      []WarmedKey `json:"keys"`
	Enqueued  int         `json:"enqueued"`
	Duplicate int         `json:"duplicate"`
	Skipped   int         `json:"skipped"`
}

// WarmedKey is what a warm did with one report.
type WarmedKey struct {
	// Key is the report's canonical key, "customer|from|to", behind
	// "report|" for a named report.
	Key    string `json:"key"`
	Result string `json:"result"`           // WarmEnqueued, WarmDuplicate or WarmSkipped
	Detail string `json:"detail,omitempty"` // why it was skipped
}

// Warm has the server enqueue fill tasks on its warming queue (POST
// /v1/warm, with the admin token). A 503 means an enqueue failed: the keys
// before it stay enqueued, and warming again is safe.
func (c *Client) Warm(ctx context.Context, req WarmRequest) (*WarmResult, error) {
	var res WarmResult
	if err := c.postAdmin(ctx, "/v1/warm", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// AllCustomers, as the only customer of an InvalidateRequest, names every
// customer.
const AllCustomers = dashcache.AllCustomers

// InvalidateRequest says whose data changed, on which days (POST
// /v1/invalidate).
type InvalidateRequest struct {
	// Customers whose data changed, or []string{AllCustomers}.
	Customers []string `json:"customers"`
	// Reports whose data changed, names of the catalogue; none: every
	// report, the default one included.
	Reports []string `json:"reports,omitempty"`
	// From and To are the first and last day changed, YYYY-MM-DD; To
	// defaults to From.
	From string `json:"from"`
	To   string `json:"to"`
}

// InvalidateResult is the server's answer to an invalidation: the cached
// reports that cover the days (Matched), those that were fresh and are now
// stale (MarkedStale), those whose refresh was queued at once (Refreshed),
// and the API processes asked for their latest reads (APIs) and those that
// did not answer in time (APIsUnanswered).
type InvalidateResult = dashcache.Invalidation

// Invalidate makes stale every cached report of the customers whose range
// covers a changed day, and has those read lately refreshed at once (POST
// /v1/invalidate, with the admin token). Repeating it is safe.
func (c *Client) Invalidate(ctx context.Context, req InvalidateRequest) (*InvalidateResult, error) {
	req.To = cmp.Or(req.To, req.From)
	var res InvalidateResult
	if err := c.postAdmin(ctx, "/v1/invalidate", req, &res); err != nil {
		return nil, err
	}
	return &res, nil
}
