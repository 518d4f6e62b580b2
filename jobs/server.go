package jobs

import (
	"cmp"
	"context"
	"fmt"
	"time"

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
// h for TypeWarm tasks, interactive queue strictly first.
func NewServer(rdb redis.UniversalClient, h asynq.Handler, cfg ServerConfig) (*asynq.Server, *asynq.ServeMux) {
	log := cfg.Log.With().Str("component", "asynq").Logger()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:       cmp.Or(cfg.Concurrency, 10),
		Queues:            map[string]int{QueueInteractive: 2, QueueWarming: 1},
		StrictPriority:    true,
		RetryDelayFunc:    RetryDelay,
		TaskCheckInterval: cmp.Or(cfg.PollInterval, 50*time.Millisecond),
		Logger:            asynqLogger{log},
		LogLevel:          asynq.InfoLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			log.Warn().Err(err).Str("task", t.Type()).Str("key", string(t.Payload())).Msg("task failed")
		}),
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeWarm, h)
	return srv, mux
}

// asynqLogger adapts zerolog to asynq.Logger.
type asynqLogger struct{ l zerolog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error().Msg(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Fatal().Msg(fmt.Sprint(args...)) }
