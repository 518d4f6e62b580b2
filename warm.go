package dashcache

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// WarmRequest names the reports to warm: each of Reports (none: the
// default report) of each of Customers, over each preset of Ranges or over
// the one range From..To.
type WarmRequest struct {
	Customers, Reports, Ranges []string
	From, To                   string
}

// WarmKeys returns the keys of a WarmRequest, checked as a read would be
// (earliest: see Earliest); served are the reports that may be warmed. A
// partitioned report's keys are the months its ranges touch, each once.
// Exactly one of Ranges or From/To must be given.
func WarmKeys(req WarmRequest, today time.Time, earliest Day, served Served) ([]ReportKey, error) {
	if len(req.Customers) == 0 {
		return nil, invalid("customers is required: at least one customer")
	}
	explicit := req.From != "" || req.To != ""
	if explicit == (len(req.Ranges) > 0) {
		return nil, invalid("give either ranges (presets such as %s) or from and to", strings.Join(PresetNames, ", "))
	}
	reports := req.Reports
	if len(reports) == 0 {
		reports = []string{""}
	}
	for _, r := range reports {
		if err := served.Check(r); err != nil {
			return nil, err
		}
	}
	n := len(req.Customers) * len(reports) * max(len(req.Ranges), 1)
	if n > MaxWarmKeys {
		return nil, invalid("%d reports requested; at most %d at once", n, MaxWarmKeys)
	}
	keys := make([]ReportKey, 0, n)
	seen := make(map[ReportKey]bool, n)
	var report string // of the keys added
	add := func(k ReportKey, err error) error {
		if err == nil {
			err = k.CheckEarliest(earliest)
		}
		k.Report = report
		for _, f := range served.Fills(k) { // a partitioned report's months, once each
			if !seen[f] {
				seen[f] = true
				keys = append(keys, f)
			}
		}
		return err
	}
	for _, c := range req.Customers {
		for _, report = range reports {
			if explicit {
				if err := add(ParseReportKey(c, req.From, req.To, today)); err != nil {
					return nil, err
				}
				continue
			}
			for _, r := range req.Ranges {
				if err := add(PresetKey(c, r, today)); err != nil {
					return nil, err
				}
			}
		}
	}
	return keys, nil
}

// Served names the reports a service serves: the catalogue's, and the
// default report unless NoDefault. The zero Served is a service without a
// catalogue: the default report alone.
type Served struct {
	// Named are the catalogue's report names (DASHCACHE_REPORTS_FILE).
	Named []string
	// NoDefault is set when there is no default report: the catalogue names
	// the reports, and no BI platform of the provider contract
	// (DASHCACHE_PROVIDER_URL) answers the default one.
	NoDefault bool
	// Partitions are the partitioned reports ("" the default report), by
	// name: each cached by month (see Partition).
	Partitions map[string]*Partition
}

// Partition returns how report is partitioned; nil when it is cached by
// range.
func (s Served) Partition(report string) *Partition { return s.Partitions[report] }

// Fills returns the reports k is filled from, and read from: the months of
// its range for a partitioned report (see Months), else k itself.
func (s Served) Fills(k ReportKey) []ReportKey {
	if s.Partition(k.Report) == nil {
		return []ReportKey{k}
	}
	return Months(k)
}

// Check returns an error (wrapping ErrInvalidInput) unless report (""
// the default report) is served: it names the reports that are, or says
// that there is no catalogue.
func (s Served) Check(report string) error {
	switch {
	case report == "" && !s.NoDefault, report != "" && slices.Contains(s.Named, report):
		return nil
	case report == "":
		return invalid("reports is required: there is no default report (DASHCACHE_PROVIDER_URL is not set); the reports are: %s", strings.Join(s.Named, ", "))
	case len(s.Named) == 0:
		return invalid("report %q: there is no report catalogue (DASHCACHE_REPORTS_FILE is not set); leave reports out for the default report", report)
	}
	return invalid("report %q is not in the report catalogue (DASHCACHE_REPORTS_FILE); its reports are: %s", report, strings.Join(s.Named, ", "))
}
