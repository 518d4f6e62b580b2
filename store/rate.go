package store

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed rate.lua
	rateSrc    string
	rateScript = redis.NewScript(rateSrc)
)

// GuardState is the fleet's state of its guards of the BI platform, on the
// queue's Redis (which does not evict): per back end its rate (below), 429
// pause and breaker (breaker.go); per customer its share of calls in flight
// and its tasks waiting for it (share.go), its admitted fills
// (admission.go) and its daily usage (usage.go). It is safe for concurrent
// use.
type GuardState struct {
	rdb redis.UniversalClient
}

// RateRule is the fleet's rate of BI calls to a back end, counted over a sliding window so
// that it holds in every second: at most Rate calls in any RateWindow, at
// most Burst of them within any Burst/Rate of a second, and, while a warming
// call waits, at most Readers readers' calls in any RateWindow.
type RateRule struct {
	Rate, Burst, Readers int
}

// RateWindow is the span the rate is counted over: a second, and 100 ms for
// the calls' travel to the BI platform. Calls counted when they are allowed
// arrive a little later, each after its own delay; the slack keeps the
// platform from seeing more than Rate calls in any of its seconds however
// those delays differ, up to 100 ms, at the cost of a rate about 9% under
// Rate when calls are queued.
const RateWindow = 1100 * time.Millisecond

// TakeCall takes a slot of the fleet's rate of the back end for one call (a warming call's,
// or a reader's), or returns how long to wait before asking again; while the
// fleet is paused after a 429, that is the pause left.
func (g *GuardState) TakeCall(ctx context.Context, backend string, rule RateRule, warming bool) (wait time.Duration, err error) {
	class := "reader"
	if warming {
		class = "warming"
	}
	burstWindow := max(1000*rule.Burst/rule.Rate, 1)
	k := keysOfBackend(backend)
	ms, err := rateScript.Run(ctx, g.rdb, []string{k.rate, k.readerRate, k.warmingWaits, k.pause},
		newToken(), rule.Rate, RateWindow.Milliseconds(), rule.Burst, burstWindow, class, rule.Readers).Int64()
	if err != nil {
		return 0, fmt.Errorf("taking a BI call slot: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// PauseCalls keeps the whole fleet from calling the back end for d: the
// Retry-After of a 429.
func (g *GuardState) PauseCalls(ctx context.Context, backend string, d time.Duration) error {
	if err := g.rdb.Set(ctx, keysOfBackend(backend).pause, "1", d).Err(); err != nil {
		return fmt.Errorf("pausing the fleet's BI calls: %w", err)
	}
	return nil
}
