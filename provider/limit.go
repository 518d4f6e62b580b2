package provider

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// DefaultRate is the default number of BI calls per second for the whole fleet.
const DefaultRate = 10

// LimitConfig configures a Limited.
type LimitConfig struct {
	// Redis is shared by every process of the fleet. Required.
	Redis redis.UniversalClient
	// Rate is how many BI calls per second the whole fleet may make together,
	// with bursts of up to Rate calls. Default 10.
	Rate int
	// RateKey is the Redis key that holds the shared rate limit state (used
	// as given, built in store/keys.go). Required.
	RateKey string
	// PauseKey is the Redis key that, while it exists, pauses every BI call
	// of the fleet; it is set after a 429 for the Retry-After it announced.
	// Required.
	PauseKey string
}

// Limited is a Source that holds every process sharing its Redis to one call
// rate and, after a 429, to the BI platform's Retry-After. It is safe for
// concurrent use.
type Limited struct {
	src      Source
	rdb      redis.UniversalClient
	limiter  *redis_rate.Limiter
	limit    redis_rate.Limit
	rateKey  string
	pauseKey string

	// sleep waits d or until ctx ends; tests replace it to move a fake clock.
	sleep func(ctx context.Context, d time.Duration) error
}

// NewLimited returns src limited by cfg, with defaults for zero fields.
func NewLimited(src Source, cfg LimitConfig) (*Limited, error) {
	cfg.Rate = cmp.Or(cfg.Rate, DefaultRate)
	switch {
	case src == nil:
		return nil, errors.New("provider: NewLimited needs a source")
	case cfg.Redis == nil:
		return nil, errors.New("provider: LimitConfig.Redis is required")
	case cfg.Rate < 0:
		return nil, fmt.Errorf("provider: LimitConfig.Rate must be positive, got %d", cfg.Rate)
	case cfg.RateKey == "" || cfg.PauseKey == "":
		return nil, errors.New("provider: LimitConfig.RateKey and PauseKey are required")
	case cfg.RateKey == cfg.PauseKey:
		return nil, errors.New("provider: LimitConfig.RateKey and PauseKey must differ")
	}
	return &Limited{
		src:      src,
		rdb:      cfg.Redis,
		limiter:  redis_rate.NewLimiter(unprefixed{cfg.Redis}),
		limit:    redis_rate.PerSecond(cfg.Rate),
		rateKey:  cfg.RateKey,
		pauseKey: cfg.PauseKey,
		sleep:    sleep,
	}, nil
}

// Query waits for the fleet's pause to end and for a call slot, then queries
// the wrapped source. If that answers rate_limited, it pauses the whole fleet
// for the answer's RetryAfter. If ctx ends while waiting, or Redis fails, it
// returns a transient *dashcache.ProviderError without calling the source.
func (l *Limited) Query(ctx context.Context, key dashcache.ReportKey) ([]byte, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	body, err := l.src.Query(ctx, key)
	l.pauseAfter(err)
	return body, err
}

// Customers asks the wrapped source for its customers, under the same limit
// as Query: it is a BI call too.
func (l *Limited) Customers(ctx context.Context) ([]string, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	customers, err := l.src.Customers(ctx)
	l.pauseAfter(err)
	return customers, err
}

// wait returns when no pause is set and the rate limit grants a call.
func (l *Limited) wait(ctx context.Context) error {
	for {
		// PTTL is -2 for a missing key and -1 for a key without expiry; a
		// pause is always set with one, so -1 is ignored rather than obeyed
		// for ever.
		pause, err := l.rdb.PTTL(ctx, l.pauseKey).Result()
		if err != nil {
			return l.waitError(ctx, "reading the fleet's pause", err)
		}
		if pause > 0 {
			if err := l.sleep(ctx, pause); err != nil {
				return l.waitError(ctx, "paused after a 429", err)
			}
			continue
		}
		res, err := l.limiter.Allow(ctx, l.rateKey, l.limit)
		if err != nil {
			return l.waitError(ctx, "taking a call slot", err)
		}
		if res.Allowed > 0 {
			return nil
		}
		if err := l.sleep(ctx, max(res.RetryAfter, time.Millisecond)); err != nil {
			return l.waitError(ctx, "waiting for a call slot", err)
		}
	}
}

func (l *Limited) waitError(ctx context.Context, doing string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	return transient(0, fmt.Errorf("rate limit: %s: %w", doing, err))
}

// pauseAfter pauses the fleet if err says the platform rate limited us. The
// pause is best effort: if Redis fails here, the next caller's own 429 sets it.
func (l *Limited) pauseAfter(err error) {
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) || pe.Outcome != dashcache.OutcomeRateLimited {
		return
	}
	d := cmp.Or(max(pe.RetryAfter, 0), DefaultRetryAfter)
	// Not the caller's ctx: it may be ending, and the pause matters to others.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.rdb.Set(ctx, l.pauseKey, "1", d).Err()
}

// unprefixed lets redis_rate use RateKey as given. redis_rate prefixes its key
// with "rate:", which would break the rule that every dashcache key starts
// with "dashcache:" (and any Redis ACL written for it).
type unprefixed struct{ redis.UniversalClient }

func (u unprefixed) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.Eval(ctx, script, stripRatePrefix(keys), args...)
}

func (u unprefixed) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.EvalSha(ctx, sha1, stripRatePrefix(keys), args...)
}

func (u unprefixed) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.EvalRO(ctx, script, stripRatePrefix(keys), args...)
}

func (u unprefixed) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return u.UniversalClient.EvalShaRO(ctx, sha1, stripRatePrefix(keys), args...)
}

func (u unprefixed) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	return u.UniversalClient.Del(ctx, stripRatePrefix(keys)...)
}

func stripRatePrefix(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, "rate:")
	}
	return out
}
