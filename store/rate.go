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

// RateRule is the fleet's rate of BI calls, counted over a sliding window so
// that it holds in every second: at most Rate calls in any second, at most
// Burst of them within any Burst/Rate of a second, and, while a warming call
// waits, at most Readers readers' calls in any second.
type RateRule struct {
	Rate, Burst, Readers int
}

// TakeCall takes a slot of the fleet's rate for one call (a warming call's,
// or a reader's), or returns how long to wait before asking again; while the
// fleet is paused after a 429, that is the pause left.
func (s *Store) TakeCall(ctx context.Context, rule RateRule, warming bool) (wait time.Duration, err error) {
	class := "reader"
	if warming {
		class = "warming"
	}
	burstWindow := max(1000*rule.Burst/rule.Rate, 1)
	ms, err := rateScript.Run(ctx, s.rdb, []string{rateKey, readerRateKey, warmingWaitKey, pauseKey},
		newToken(), rule.Rate, rule.Burst, burstWindow, class, rule.Readers).Int64()
	if err != nil {
		return 0, fmt.Errorf("taking a BI call slot: %w", err)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// PauseCalls keeps the whole fleet from calling the BI platform for d: the
// Retry-After of a 429.
func (s *Store) PauseCalls(ctx context.Context, d time.Duration) error {
	if err := s.rdb.Set(ctx, pauseKey, "1", d).Err(); err != nil {
		return fmt.Errorf("pausing the fleet's BI calls: %w", err)
	}
	return nil
}
