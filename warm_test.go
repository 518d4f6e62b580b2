package dashcache_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
)

// queue is a fake Warmer: customers in dup have a task queued already, those
// in fail cannot be enqueued, and cancel (if set) is called after the second
// key, as a caller that gives up would.
type queue struct {
	dup, fail string
	cancel    context.CancelFunc
	tried     []string
}

func (q *queue) Warm(_ context.Context, k dashcache.ReportKey, r dashcache.Refresh) (bool, error) {
	if !r.Force {
		return false, errors.New("the Refresh was not passed on")
	}
	q.tried = append(q.tried, k.Customer)
	if len(q.tried) == 2 && q.cancel != nil {
		q.cancel()
	}
	if k.Customer == q.fail {
		return false, fmt.Errorf("enqueueing the fill task of %s: connection refused", k)
	}
	return k.Customer != q.dup, nil
}

func TestWarmAll(t *testing.T) {
	today := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	keys, err := dashcache.WarmKeys(dashcache.WarmRequest{Customers: []string{"a", "b", "c", "d"}, Ranges: []string{"yesterday"}}, today, 0, dashcache.Served{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name                  string
		q                     queue
		onError               dashcache.OnError
		cancelled             bool
		wantTried, wantResult []string
		enqueued, dup, errors int
	}{
		{"all good", queue{dup: "c"}, dashcache.ContinueOnError, false,
			[]string{"a", "b", "c", "d"}, []string{"enqueued", "enqueued", "duplicate", "enqueued"}, 3, 1, 0},
		{"continue past a failure", queue{fail: "b"}, dashcache.ContinueOnError, false,
			[]string{"a", "b", "c", "d"}, []string{"enqueued", "failed", "enqueued", "enqueued"}, 3, 0, 1},
		{"stop at a failure", queue{fail: "b"}, dashcache.StopOnError, false,
			[]string{"a", "b"}, []string{"enqueued", "failed"}, 1, 0, 1},
		{"caller gone", queue{dup: "a"}, dashcache.ContinueOnError, true,
			[]string{"a", "b"}, []string{"duplicate", "enqueued"}, 1, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if c.cancelled {
				c.q.cancel = cancel
			}
			res := dashcache.WarmAll(ctx, &c.q, keys, dashcache.Refresh{Force: true}, c.onError)
			var results []string
			for i, wk := range res.Keys {
				results = append(results, wk.Result)
				if wk.Key != keys[i] || (wk.Result == dashcache.WarmFailed) != (wk.Err != nil) {
					t.Errorf("key %d: %+v", i, wk)
				}
			}
			if !slices.Equal(c.q.tried, c.wantTried) || !slices.Equal(results, c.wantResult) {
				t.Errorf("tried %q with results %q, want %q and %q", c.q.tried, results, c.wantTried, c.wantResult)
			}
			if res.Enqueued != c.enqueued || res.Duplicates != c.dup || len(res.Errors) != c.errors {
				t.Errorf("counted %d enqueued, %d duplicates, errors %v; want %d, %d, %d errors",
					res.Enqueued, res.Duplicates, res.Errors, c.enqueued, c.dup, c.errors)
			}
			if c.cancelled && (!errors.Is(res.Errors[0], context.Canceled) || !strings.Contains(res.Errors[0].Error(), "stopped after 2 of 4 keys")) {
				t.Errorf("error %v, want one saying the keys after the second were left untried", res.Errors[0])
			}
		})
	}
}

// TestWarmKeysOfReports: the keys are customers x reports x ranges, the
// default report when none is named; a report not in the catalogue is
// refused, naming those that are.
func TestWarmKeysOfReports(t *testing.T) {
	today := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	req := dashcache.WarmRequest{Customers: []string{"a", "b"}, Reports: []string{"orders", "revenue"}, Ranges: []string{"yesterday", "last_7_days"}}
	keys, err := dashcache.WarmKeys(req, today, 0, dashcache.Served{Named: []string{"orders", "revenue", "funnel"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.String())
	}
	want := []string{
		"orders|a|2025-03-09|2025-03-09", "orders|a|2025-03-03|2025-03-09", "revenue|a|2025-03-09|2025-03-09", "revenue|a|2025-03-03|2025-03-09",
		"orders|b|2025-03-09|2025-03-09", "orders|b|2025-03-03|2025-03-09", "revenue|b|2025-03-09|2025-03-09", "revenue|b|2025-03-03|2025-03-09",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("keys %v, want %v", got, want)
	}
	req.Reports = []string{"revenue", "churn"}
	if _, err := dashcache.WarmKeys(req, today, 0, dashcache.Served{Named: []string{"orders", "revenue"}}); !errors.Is(err, dashcache.ErrInvalidInput) ||
		!strings.Contains(err.Error(), `"churn"`) || !strings.Contains(err.Error(), "orders, revenue") {
		t.Errorf("an unknown report: %v", err)
	}
	req.Reports = nil // the default report, which a catalogue without DASHCACHE_PROVIDER_URL has not
	if _, err := dashcache.WarmKeys(req, today, 0, dashcache.Served{Named: []string{"orders"}, NoDefault: true}); !errors.Is(err, dashcache.ErrInvalidInput) ||
		!strings.Contains(err.Error(), "reports is required: there is no default report") || !strings.Contains(err.Error(), "orders") {
		t.Errorf("the default report when there is none: %v", err)
	}
}
