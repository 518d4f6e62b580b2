package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// ServerConfig configures the asynq server that runs warm tasks.
type ServerConfig struct {
	Concurrency int            // tasks run at once; default 10
	Log         zerolog.Logger // default: no logs
	// PollInterval is how long an idle worker waits before looking for new
	// tasks again: it adds to a waiting reader's latency. Default 50 ms.
	PollInterval time.Duration
}

// NewServer returns an asynq server on rdb (which the caller closes) that runs
// h for TypeWarm tasks. When both queues hold tasks, a worker takes an
// interactive one four times as often as a warming one: readers come first,
// and warming still gets a fifth of the slots (and, through the rate limit, a
// fifth of the BI rate: provider.WarmingShare).
func NewServer(rdb redis.UniversalClient, h asynq.Handler, cfg ServerConfig) (*asynq.Server, *asynq.ServeMux) {
	log := cfg.Log.With().Str("component", "asynq").Logger()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:    cmp.Or(cfg.Concurrency, 10),
		Queues:         map[string]int{QueueInteractive: 4, QueueWarming: 1},
		RetryDelayFunc: RetryDelay,
		// A deferred task waits without using up a retry.
		IsFailure:         func(err error) bool { return !isDeferral(err) },
		TaskCheckInterval: cmp.Or(cfg.PollInterval, 50*time.Millisecond),
		// How soon a task put back to wait (retry, deferral) is due again.
		DelayedTaskCheckInterval: time.Second,
		Logger:                   asynqLogger{log},
		LogLevel:                 asynq.InfoLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if !isDeferral(err) {
				log.Warn().Err(err).Str("task", t.Type()).Str("key", string(t.Payload())).Msg("task failed")
			}
		}),
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeWarm, h)
	return srv, mux
}

func isDeferral(err error) bool {
	var d *dashcache.Deferral
	return errors.As(err, &d)
}

// asynqLogger adapts zerolog to asynq.Logger.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Fatal().Msg(fmt.Sprint(args...)) }
