package dashcache

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Warmer enqueues fill tasks: the queue (jobs.Enqueuer) as the API, the
// scheduler and the warm command see it.
type Warmer interface {
	// Warm enqueues the fill task of a report, which refreshes it as r says.
	// enqueued is false, with no error, when the report's fill task is
	// already queued or running. An error names the report.
	Warm(ctx context.Context, k ReportKey, r Refresh) (enqueued bool, err error)
}

// OnError says whether WarmAll goes on after a key fails.
type OnError int

const (
	// ContinueOnError tries every key: a plan or a command reports each
	// failure and warms what it can.
	ContinueOnError OnError = iota
	// StopOnError stops at the first failure: the caller answers with it.
	StopOnError
)

// What happened to one key of WarmAll, as in WarmedKey.Result.
const (
	WarmEnqueued  = "enqueued"
	WarmDuplicate = "duplicate"
	WarmSkipped   = "skipped" // refused: the customer's daily budget is used
	WarmFailed    = "failed"
)

// WarmedKey is what WarmAll did with one key.
type WarmedKey struct {
	Key    ReportKey
	Result string // WarmEnqueued, WarmDuplicate, WarmSkipped or WarmFailed
	Err    error  // why it was skipped (a *Refusal) or failed
}

// WarmResult counts what WarmAll did.
type WarmResult struct {
	// Keys are the keys tried, in order, each with its result.
	Keys []WarmedKey
	// Enqueued is the number of fill tasks enqueued.
	Enqueued int
	// Duplicates is the number of keys whose task was already queued or
	// running.
	Duplicates int
	// Skipped is the number of keys refused (a *Refusal in their
	// WarmedKey.Err): their customer has used its daily budget.
	Skipped int
	// Errors holds one error per key that failed (it names the key), and one
	// for the keys left untried when ctx ended.
	Errors []error
}

// WarmAll enqueues the fill task of every key through w, refreshing as r says,
// and counts what happened. A key that w refuses is skipped, and so are the
// rest of its customer's keys. ctx ending stops it, with an error for the keys
// left untried; a failed key stops it only with StopOnError.
func WarmAll(ctx context.Context, w Warmer, keys []ReportKey, r Refresh, onError OnError) WarmResult {
	res := WarmResult{Keys: make([]WarmedKey, 0, len(keys))}
	refused := map[string]error{}
	for i, k := range keys {
		if err := ctx.Err(); err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("stopped after %d of %d keys: %w", i, len(keys), err))
			break
		}
		enqueued, err := false, refused[k.Customer]
		if err == nil {
			enqueued, err = w.Warm(ctx, k, r)
		}
		wk := WarmedKey{Key: k, Result: WarmDuplicate, Err: err}
		var refusal *Refusal
		switch {
		case errors.As(err, &refusal):
			wk.Result = WarmSkipped
			res.Skipped++
			refused[k.Customer] = err
		case err != nil:
			wk.Result = WarmFailed
			res.Errors = append(res.Errors, err)
		case enqueued:
			wk.Result = WarmEnqueued
			res.Enqueued++
		default:
			res.Duplicates++
		}
		res.Keys = append(res.Keys, wk)
		if wk.Result == WarmFailed && onError == StopOnError {
			break
		}
	}
	return res
}

// MaxWarmKeys bounds how many reports one warm request may name.
const MaxWarmKeys = 1000

// WarmKeys returns the keys of customers x ranges (preset names), or of
// customers x the one range from..to when ranges is empty, checked as a read
// would be (earliest: see Earliest). Exactly one of ranges or from/to must be
// given.
func WarmKeys(customers, ranges []string, from, to string, today time.Time, earliest Day) ([]ReportKey, error) {
	if len(customers) == 0 {
		return nil, invalid("customers is required: at least one customer")
	}
	explicit := from != "" || to != ""
	if explicit == (len(ranges) > 0) {
		return nil, invalid("give either ranges (presets such as %s) or from and to", strings.Join(PresetNames, ", "))
	}
	n := len(customers) * max(len(ranges), 1)
	if n > MaxWarmKeys {
		return nil, invalid("%d reports requested; at most %d at once", n, MaxWarmKeys)
	}
	keys := make([]ReportKey, 0, n)
	add := func(k ReportKey, err error) error {
		if err == nil {
			err = k.CheckEarliest(earliest)
		}
		keys = append(keys, k)
		return err
	}
	for _, c := range customers {
		if explicit {
			if err := add(ParseReportKey(c, from, to, today)); err != nil {
				return nil, err
			}
			continue
		}
		for _, r := range ranges {
			if err := add(PresetKey(c, r, today)); err != nil {
				return nil, err
			}
		}
	}
	return keys, nil
}
