package store

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed breaker_allow.lua
	breakerAllowSrc string
	//go:embed breaker_record.lua
	breakerRecordSrc string

	breakerAllowScript  = redis.NewScript(breakerAllowSrc)
	breakerRecordScript = redis.NewScript(breakerRecordSrc)
)

// A back end's breaker is the fleet's shared memory of a BI platform that keeps
// failing for everyone. Closed, every call may go out. It opens when enough
// calls fail, for enough customers, with none answered in between; then no
// call goes out for a cool-down. After it, one call (the probe) goes out: if
// it is answered, the breaker closes; if it fails, it opens again.

// BreakerRule says when the breaker opens and for how long.
type BreakerRule struct {
	Failures  int           // failures that open it...
	Customers int           // ...from at least this many customers...
	Window    time.Duration // ...within this window, none answered between
	Cooldown  time.Duration // how long it stays open
}

// BreakerAllow asks whether a BI call to the back end may go out. probe is true for the one
// call allowed after a cool-down; its caller must record its outcome (or
// AbandonProbe). When the call may not go out, wait says when to ask again.
// probeTTL bounds a probe whose caller died.
func (g *GuardState) BreakerAllow(ctx context.Context, backend string, probeTTL time.Duration) (allow, probe bool, wait time.Duration, err error) {
	k := keysOfBackend(backend)
	res, err := breakerAllowScript.Run(ctx, g.rdb, []string{k.breakerOpen, k.breakerTripped, k.breakerProbe}, probeTTL.Milliseconds()).Int64Slice()
	if err != nil {
		return false, false, 0, fmt.Errorf("asking the breaker: %w", err)
	}
	return res[0] != 0, res[0] == 2, time.Duration(res[1]) * time.Millisecond, nil
}

// BreakerRecord records the outcome of a call allowed by BreakerAllow:
// failed is true when the platform did not answer (timeout, 5xx, no
// connection). change is 1 if the outcome opened the breaker, -1 if it closed
// it.
//
// A slow failure (slowSince, when the call began, not zero: it had run past
// its back end's usual latency) counts only if no call of the back end was
// answered since it began: the platform answering others is a slow query,
// not a platform down.
func (g *GuardState) BreakerRecord(ctx context.Context, backend string, rule BreakerRule, customer string, failed bool, slowSince time.Time) (change int, err error) {
	k := keysOfBackend(backend)
	keys := []string{k.breakerOpen, k.breakerTripped, k.breakerProbe, k.breakerFailures, k.breakerAnswered}
	var began int64
	if !slowSince.IsZero() {
		began = slowSince.UnixMilli()
	}
	n, err := breakerRecordScript.Run(ctx, g.rdb, keys, failed, customer, newToken(),
		rule.Failures, rule.Customers, rule.Window.Milliseconds(), rule.Cooldown.Milliseconds(), began).Int()
	if err != nil {
		return 0, fmt.Errorf("recording a BI call in the breaker: %w", err)
	}
	return n, nil
}

// AbandonProbe frees the probe of a caller that did not make its call.
func (g *GuardState) AbandonProbe(ctx context.Context, backend string) error {
	if err := g.rdb.Del(ctx, keysOfBackend(backend).breakerProbe).Err(); err != nil {
		return fmt.Errorf("abandoning the breaker's probe: %w", err)
	}
	return nil
}

// BreakerOpen returns how long the breaker stays open, or 0 when it is not.
func (g *GuardState) BreakerOpen(ctx context.Context, backend string) (time.Duration, error) {
	left, err := g.rdb.PTTL(ctx, keysOfBackend(backend).breakerOpen).Result()
	if err != nil {
		return 0, fmt.Errorf("reading the breaker: %w", err)
	}
	return max(left, 0), nil
}
