package jobs

import (
	"context"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
)

// Cache is what jobs needs of the report cache; *store.Cache is one.
type Cache interface {
	Get(ctx context.Context, k dashcache.ReportKey) (string, error)
	Locked(ctx context.Context, k dashcache.ReportKey) (bool, error)
	Obtain(ctx context.Context, k dashcache.ReportKey, ttl time.Duration) (*store.Lock, error)
	MarkStale(ctx context.Context, keys []dashcache.ReportKey, at time.Time) ([]dashcache.ReportKey, error)
	HandOverReads(ctx context.Context, wait time.Duration) (asked, answered int, err error)
}

// Index is what jobs needs of the index of cached reports, their reads and
// the changes of data; *store.Index is one.
type Index interface {
	IndexFill(ctx context.Context, k dashcache.ReportKey, now, expires time.Time) error
	ChangedSince(ctx context.Context, k dashcache.ReportKey, since time.Time) (bool, error)
	RecordChange(ctx context.Context, ch dashcache.Changed, at time.Time) error
	Cached(ctx context.Context, customer string, now time.Time) ([]dashcache.ReportKey, error)
	IndexedCustomers(ctx context.Context) ([]string, error)
	ReadSince(ctx context.Context, customer string, since time.Time) ([]dashcache.ReportKey, error)
}

// Admission is what the Enqueuer needs of the guard; *guard.Guard is one.
type Admission interface {
	// Admit lets a reader's fill go to the queue, or returns a
	// *dashcache.Refusal.
	Admit(ctx context.Context, k dashcache.ReportKey) error
	// CheckBudget refuses (a *dashcache.Refusal) a customer whose daily
	// budget is used: warming skips it.
	CheckBudget(ctx context.Context, customer string) error
}

// Guard is what a fill needs of the guard; *guard.Guard is one.
type Guard interface {
	// Call makes query, the BI call of k, once every guard lets it; it
	// returns a *dashcache.Deferral or *dashcache.Refusal, or query's
	// outcome.
	Call(ctx context.Context, k dashcache.ReportKey, warming bool, query func(context.Context) ([]byte, error)) ([]byte, error)
	// FillEnded ends the count of an admitted fill: its task ended.
	FillEnded(ctx context.Context, k dashcache.ReportKey) error
	// Backend names the back end that answers report ("": the default).
	Backend(report string) string
	// CallTimeout is the longest a BI call runs.
	CallTimeout() time.Duration
	// ReportLatency tells the fleet a back end's latency, as this worker
	// sees it.
	ReportLatency(ctx context.Context, backend string, l store.Latency) error
	// WaitForShare and NextWaiting keep the tasks of a customer that wait
	// for a slot of its share.
	WaitForShare(ctx context.Context, customer, task string) error
	NextWaiting(ctx context.Context, customer string) (string, error)
}
