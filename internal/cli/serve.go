package cli

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/dashcache/dashcache/jobs"
	"github.com/dashcache/dashcache/provider"
	"github.com/dashcache/dashcache/scheduler"
	"github.com/dashcache/dashcache/store"
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynq/x/metrics"
	"github.com/hibiken/asynqmon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// serve runs a role of cfg.Role's parts (API, worker, scheduler) until ctx
// ends. It builds them in order, each from those before it, serves HTTP (the
// API, or health and metrics), and then stops them in reverse order.
func serve(ctx context.Context, cfg Config, log zerolog.Logger) error {
	role := cfg.Role
	runScheduler := role.Scheduler && cfg.ScheduleFile != ""

	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := connect(startCtx, cfg, log)
	if err != nil {
		return err
	}
	defer r.close()
	rdb, st, now := r.queue, r.store, r.clock.Now // every part reads Redis's clock
	reg, err := newRegistry(rdb, st)
	if err != nil {
		return err
	}
	var queue *jobs.Enqueuer
	if role.API || runScheduler {
		if queue, err = newQueue(cfg, r, reg); err != nil {
			return err
		}
	}
	var bi provider.Source
	if role.Worker || runScheduler {
		if bi, err = newSource(cfg, r, reg, log); err != nil {
			return err
		}
	}

	if role.Worker {
		h, err := jobs.NewHandler(jobs.HandlerConfig{
			Store: st, Source: bi, Log: log, Zone: cfg.Zone, Now: now, Registerer: reg,
			Inspector: asynq.NewInspectorFromRedisClient(rdb),
		})
		if err != nil {
			return err
		}
		worker := jobs.NewWorker(rdb, h, jobs.WorkerConfig{Concurrency: cfg.WorkerConcurrency, Log: log})
		if err := worker.Start(); err != nil {
			return err
		}
		defer worker.Shutdown()
	}
	if runScheduler {
		sc, err := newScheduler(cfg, queue, bi, st, now, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sc.Shutdown(sctx) // lets a running firing finish
		}()
	}

	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	guardConfig := api.GuardConfig{APIKeys: cfg.APIKeys, AdminToken: cfg.AdminToken, AllowedHosts: cfg.AllowedHosts, MetricsPublic: cfg.MetricsPublic}
	if !role.API {
		guard, err := api.NewGuard(guardConfig)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		api.HandleHealth(mux, st, log)
		mux.Handle("/metrics", guard.Metrics(metricsHandler))
		return serveHTTP(ctx, cfg.Listen, mux, nil, log, nil, nil)
	}
	srv, err := api.New(api.Config{
		Store: st,
		Queue: queue,
		Guard: guardConfig,
		Monitoring: asynqmon.New(asynqmon.Options{
			RootPath:     "/monitoring",
			RedisConnOpt: sharedRedis{rdb},
			ReadOnly:     cfg.MonitoringReadOnly,
		}),
		Metrics:    metricsHandler,
		Registerer: reg,
		Log:        log,
		Now:        now,
		Zone:       cfg.Zone,
		Earliest:   cfg.EarliestDate,
		DailyCalls: cfg.CustomerDailyCalls,
		L1Bytes:    cfg.L1Bytes,
		ReadWithin: cfg.ReadWithin,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(startCtx); err != nil {
		return fmt.Errorf("starting API: %w", err)
	}
	hint := func(addr net.Addr) {
		log.Info().Msgf("try: curl -i 'http://%s/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31'", addr)
	}
	return serveHTTP(ctx, cfg.Listen, srv.Handler(), srv.ServeFast, log, hint, srv.Shutdown)
}

// newRegistry returns the process's Prometheus registry with the Go runtime's,
// the process's and asynq's queue metrics, and the fleet's breaker, all read
// at each scrape.
func newRegistry(rdb redis.UniversalClient, st *store.Store) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	breaker := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dashcache_breaker_open",
		Help: "1 while the fleet's breaker keeps every worker from calling the failing BI platform, else 0 (read from Redis at each scrape).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if left, err := st.BreakerOpen(ctx); err == nil && left > 0 {
			return 1
		}
		return 0
	})
	if err := prom.Register(reg,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(rdb)),
		breaker,
	); err != nil {
		return nil, err
	}
	return reg, nil
}

// newQueue returns the queue that readers, the scheduler and the warm command
// enqueue fills on.
func newQueue(cfg Config, r *redisParts, reg prometheus.Registerer) (*jobs.Enqueuer, error) {
	return jobs.NewEnqueuer(jobs.EnqueuerConfig{
		Redis:           r.queue,
		Store:           r.store,
		CustomerPending: cfg.CustomerPending,
		DailyCalls:      cfg.CustomerDailyCalls,
		Zone:            cfg.Zone,
		Now:             r.clock.Now,
		Registerer:      reg,
	})
}

// newSimulator returns the simulated BI platform of cfg.
func newSimulator(cfg Config) *provider.Simulator {
	return provider.NewSimulator(provider.SimConfig{
		MinLatency: cfg.SimMinLatency,
		MaxLatency: cfg.SimMaxLatency,
		Token:      cfg.ProviderToken,
	})
}

// newSource returns the BI platform (or the simulator), measured, behind the
// fleet-wide rate limit.
func newSource(cfg Config, r *redisParts, reg prometheus.Registerer, log zerolog.Logger) (provider.Source, error) {
	var src provider.Source
	if cfg.ProviderURL == "" {
		log.Info().Msg("no DASHCACHE_PROVIDER_URL: the built-in simulated BI platform answers queries")
		src = newSimulator(cfg)
	} else {
		c, err := provider.NewClient(provider.ClientConfig{
			BaseURL: cfg.ProviderURL, Token: cfg.ProviderToken, Timeout: cfg.ProviderTimeout, MaxBodyBytes: cfg.ProviderMaxBytes,
		})
		if err != nil {
			return nil, err
		}
		src = c
	}
	measured, err := provider.NewMeasured(src, reg)
	if err != nil {
		return nil, err
	}
	return provider.NewLimited(measured, provider.LimitConfig{
		Store:         r.store,
		Rate:          cfg.ProviderRate,
		Burst:         cfg.ProviderBurst,
		CustomerShare: cfg.CustomerConcurrency,
		DailyCalls:    cfg.CustomerDailyCalls,
		Zone:          cfg.Zone,
		CallTimeout:   cfg.ProviderTimeout,
		Breaker:       store.BreakerRule{Cooldown: cfg.BreakerCooldown},
		Registerer:    reg,
		Now:           r.clock.Now,
	})
}

// newScheduler starts the warming plans of DASHCACHE_SCHEDULE_FILE.
func newScheduler(cfg Config, queue *jobs.Enqueuer, bi provider.Source, st *store.Store, now func() time.Time, log zerolog.Logger) (*scheduler.Scheduler, error) {
	file, err := scheduler.LoadFile(cfg.ScheduleFile)
	if err != nil {
		return nil, fmt.Errorf("DASHCACHE_SCHEDULE_FILE: %w", err)
	}
	sc, err := scheduler.New(scheduler.Config{
		File:        file,
		DefaultZone: cfg.Zone,
		Warmer:      queue,
		Customers:   bi.Customers,
		ReadSince:   st.ReadSince,
		Log:         log,
		Now:         now,
	})
	if err != nil {
		return nil, err
	}
	if err := sc.Start(context.Background()); err != nil {
		return nil, err
	}
	log.Info().Str("file", cfg.ScheduleFile).Int("plans", len(file.Plans)).Msg("warming plans scheduled")
	return sc, nil
}

func serveFakeBI(ctx context.Context, cfg Config, log zerolog.Logger) error {
	sim := newSimulator(cfg)
	lo, hi := sim.Latency()
	log.Info().Dur("min_latency", lo).Dur("max_latency", hi).
		Bool("token_required", cfg.ProviderToken != "").Msg("simulated BI platform")
	return serveHTTP(ctx, cfg.Listen, sim.Handler(), nil, log, nil, nil)
}

// sharedRedis hands asynqmon our Redis client instead of a second pool.
type sharedRedis struct{ redis.UniversalClient }

func (s sharedRedis) MakeRedisClient() any { return s.UniversalClient }
