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

// DefaultConcurrency is the default of WorkerConfig.Concurrency.
const DefaultConcurrency = 10

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	Concurrency int            // tasks run at once; default DefaultConcurrency
	Log         zerolog.Logger // default: no logs
	// PollInterval is how long an idle worker waits before looking for new
	// tasks again: it adds to a waiting reader's latency. Default 50 ms.
	PollInterval time.Duration
	// ShutdownGrace is how long BI calls in flight may go on after Shutdown
	// begins. Default 8 s.
	ShutdownGrace time.Duration
}

// Worker is the asynq server that runs a Handler for TypeFill tasks. When
// both queues hold tasks, it takes an interactive one four times as often as
// a warming one: readers come first, and warming still gets a fifth of the
// slots (and, through the rate limit, a fifth of the BI rate:
// guard.WarmingShare).
type Worker struct {
	srv   *asynq.Server
	mux   *asynq.ServeMux
	h     *Handler
	grace time.Duration
}

// NewWorker returns a Worker on rdb (which the caller closes) that runs h.
func NewWorker(rdb redis.UniversalClient, h *Handler, cfg WorkerConfig) *Worker {
	cfg.ShutdownGrace = cmp.Or(cfg.ShutdownGrace, 8*time.Second)
	log := cfg.Log.With().Str("component", "asynq").Logger()
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency:    cmp.Or(cfg.Concurrency, DefaultConcurrency),
		Queues:         map[string]int{QueueInteractive: 4, QueueWarming: 1},
		RetryDelayFunc: RetryDelay,
		// A deferred task waits without using up a retry.
		IsFailure:         func(err error) bool { return !isDeferral(err) },
		TaskCheckInterval: cmp.Or(cfg.PollInterval, 50*time.Millisecond),
		// How soon a task put back to wait (retry, deferral) is due again.
		DelayedTaskCheckInterval: time.Second,
		// Past it, asynq hands a task still running back to the queue while
		// its handler holds the report's lock; the grace cuts the handler
		// first.
		ShutdownTimeout: cfg.ShutdownGrace + 5*time.Second,
		Logger:          asynqLogger{log},
		LogLevel:        asynq.InfoLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if !isDeferral(err) {
				log.Warn().Err(err).Str("task", t.Type()).Str("key", string(t.Payload())).Msg("task failed")
			}
		}),
	})
	mux := asynq.NewServeMux()
	mux.Handle(TypeFill, h)
	return &Worker{srv: srv, mux: mux, h: h, grace: cfg.ShutdownGrace}
}

// Start starts taking tasks.
func (w *Worker) Start() error {
	if err := w.srv.Start(w.mux); err != nil {
		return fmt.Errorf("starting worker: %w", err)
	}
	return nil
}

// Shutdown stops taking tasks and returns once every task in hand is done:
// a BI call still out after ShutdownGrace is cut, and its task goes back to
// the queue (its lock released first) without using up a retry, for another
// worker to fill.
func (w *Worker) Shutdown() {
	w.h.drainAfter(w.grace)
	w.srv.Shutdown()
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
