package cli

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/dashcache/dashcache/internal/tracing"
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
	"go.opentelemetry.io/otel/trace"
)

// serve runs a role of cfg.Role's parts (API, worker, scheduler) until ctx
// ends. It builds them in order, each from those before it, serves HTTP (the
// API, or health and metrics), and then stops them in reverse order.
func serve(ctx context.Context, cfg Config, log zerolog.Logger) error {
	role := cfg.Role
	runScheduler := role.Scheduler && cfg.ScheduleFile != ""

	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tp, err := tracing.New(startCtx, cfg.getenv, role.Name)
	if err != nil {
		return err
	}
	var tracer trace.TracerProvider // nil: tracing is off
	if tp != nil {
		tracer = tp
		log.Info().Msg("tracing: spans are exported over OTLP (OTEL_* settings)")
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				log.Warn().Err(err).Msg("tracing: the last spans were not exported")
			}
		}()
	}
	r, err := connect(startCtx, cfg, log)
	if err != nil {
		return err
	}
	defer r.close()
	if tp != nil {
		if err := r.trace(tracing.InTracesOnly(tp)); err != nil {
			return err
		}
	}
	rdb, st, now := r.queue, r.store, r.clock.Now // every part reads Redis's clock
	reg, err := newRegistry(r)
	if err != nil {
		return err
	}
	bi, err := newGuard(cfg, r, reg)
	if err != nil {
		return err
	}
	var queue *jobs.Enqueuer
	if role.API || runScheduler {
		if queue, err = newQueue(r, bi, reg); err != nil {
			return err
		}
	}
	var def provider.Source // the default report's, and the customers'
	if role.Worker || runScheduler {
		if def, err = defaultSource(cfg, log); err != nil {
			return err
		}
	}
	var src dashcache.ReportSource
	if role.Worker {
		var closeSource func()
		if src, closeSource, err = newSource(startCtx, cfg, def, reg, log); err != nil {
			return err
		}
		defer closeSource()
	}

	if role.Worker {
		h, err := jobs.NewHandler(jobs.HandlerConfig{
			Cache: st.Cache, Index: st.Index, Guard: bi, Source: src, Log: log, Zone: cfg.Zone, Now: now, Registerer: reg,
			Reports: cfg.served(), Freshness: cfg.Reports.Freshness,
			Inspector: asynq.NewInspectorFromRedisClient(rdb), Tracing: tracer, Slots: cfg.WorkerConcurrency,
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
		sc, err := newScheduler(cfg, r, queue, bi, def, reg, log)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			sc.Shutdown(sctx) // lets a running firing finish
		}()
	}

	// After SIGTERM, /readyz answers 503 for cfg.Drain while requests are
	// still served.
	dr := drain{d: cfg.Drain, draining: new(atomic.Bool)}
	ready := drainingPinger{Pinger: r, draining: dr.draining}
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	authConfig := api.AuthConfig{APIKeys: cfg.APIKeys, AdminToken: cfg.AdminToken, AllowedHosts: cfg.AllowedHosts, MetricsPublic: cfg.MetricsPublic}
	if !role.API {
		auth, err := api.NewAuth(authConfig)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		api.HandleHealth(mux, ready, log)
		mux.Handle("/metrics", auth.Metrics(metricsHandler))
		return serveHTTP(ctx, cfg.Listen, mux, nil, log, nil, dr, nil, connCap(cfg))
	}
	srv, err := api.New(api.Config{
		Cache: st.Cache,
		Queue: queue,
		Reads: st.Index,
		Usage: bi,
		Redis: ready,
		Auth:  authConfig,
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
		L1Bytes:    cfg.L1Bytes,
		ReadWithin: cfg.ReadWithin,
		Tracing:    tracer,
		Reports:    cfg.served(),
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
	return serveHTTP(ctx, cfg.Listen, srv.Handler(), srv.ServeFast, log, hint, dr, srv.Shutdown, connCap(cfg))
}

// newRegistry returns the process's Prometheus registry with the Go runtime's,
// the process's, asynq's queue metrics (read at each scrape) and r's failed
// Redis commands.
func newRegistry(r *redisParts) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := prom.Register(reg,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(r.queue)),
		r.errors,
	); err != nil {
		return nil, err
	}
	return reg, nil
}

// newGuard returns the guard of the BI back ends of cfg: the default
// report's, and the catalogue's, each at its own rate (by default the
// default's).
func newGuard(cfg Config, r *redisParts, reg prometheus.Registerer) (*guard.Guard, error) {
	def := guard.Backend{
		Rate:    cfg.ProviderRate,
		Burst:   cfg.ProviderBurst,
		Breaker: store.BreakerRule{Cooldown: cfg.BreakerCooldown},
	}
	backends := map[string]guard.Backend{"": def}
	backendOf := func(string) string { return "" }
	if cat := cfg.Reports; cat != nil {
		for name, b := range cat.Backends {
			backends[name] = guard.Backend{Rate: cmp.Or(b.Rate, def.Rate), Burst: cmp.Or(b.Burst, def.Burst), Breaker: def.Breaker}
		}
		backendOf = func(report string) string { return cat.Reports[report].Backend }
	}
	return guard.New(guard.Config{
		State:           r.store.Guards,
		Backends:        backends,
		BackendOf:       backendOf,
		CustomerShare:   cfg.CustomerConcurrency,
		CustomerPending: cfg.CustomerPending,
		DailyCalls:      cfg.CustomerDailyCalls,
		Zone:            cfg.Zone,
		CallTimeout:     cfg.ProviderTimeout,
		Registerer:      reg,
		Now:             r.clock.Now,
	})
}

// served returns the reports of cfg: the catalogue's, and the default
// report unless the catalogue names the reports and DASHCACHE_PROVIDER_URL
// is unset (then the simulator would answer it); and which are partitioned.
func (cfg Config) served() dashcache.Served {
	s := dashcache.Served{Partitions: cfg.Reports.Partitions()}
	if cfg.PartitionDefault {
		s.Partitions[""] = dashcache.SimulatorPartition
	}
	if cfg.Reports != nil {
		s.Named, s.NoDefault = slices.Sorted(maps.Keys(cfg.Reports.Reports)), cfg.ProviderURL == ""
	}
	return s
}

// newQueue returns the queue that readers, the scheduler and the warm command
// enqueue fills on.
func newQueue(r *redisParts, admission jobs.Admission, reg prometheus.Registerer) (*jobs.Enqueuer, error) {
	return jobs.NewEnqueuer(jobs.EnqueuerConfig{
		Redis:      r.queue,
		Cache:      r.store.Cache,
		Index:      r.store.Index,
		Admission:  admission,
		Now:        r.clock.Now,
		Registerer: reg,
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

// defaultSource returns the BI platform of the default report, which lists
// the customers: DASHCACHE_PROVIDER_URL's, or the simulator without one;
// nil when there is no default report (cfg.served).
func defaultSource(cfg Config, log zerolog.Logger) (provider.Source, error) {
	switch {
	case cfg.served().NoDefault:
		log.Info().Msg("no DASHCACHE_PROVIDER_URL: the report catalogue names the reports, and there is no default report")
		return nil, nil
	case cfg.ProviderURL == "":
		log.Info().Msg("no DASHCACHE_PROVIDER_URL: the built-in simulated BI platform answers queries")
		return newSimulator(cfg), nil
	}
	return provider.NewClient(provider.ClientConfig{
		BaseURL: cfg.ProviderURL, Token: cfg.ProviderToken, Timeout: cfg.ProviderTimeout, MaxBodyBytes: cfg.ProviderMaxBytes,
	})
}

// newSource returns the BI back ends, measured: def (defaultSource's) for
// the default report, and the catalogue's back ends for its reports;
// closeAll closes them.
func newSource(ctx context.Context, cfg Config, def provider.Source, reg prometheus.Registerer, log zerolog.Logger) (src dashcache.ReportSource, closeAll func(), err error) {
	reports, err := provider.OpenReports(ctx, cfg.Reports, cfg.getenv, def,
		provider.Limits{Timeout: cfg.ProviderTimeout, MaxBodyBytes: cfg.ProviderMaxBytes, Concurrency: cmp.Or(cfg.WorkerConcurrency, jobs.DefaultConcurrency)})
	if err != nil {
		return nil, nil, fmt.Errorf("DASHCACHE_REPORTS_FILE: %w", err)
	}
	measured, err := provider.NewMeasured(reports, reg, cfg.served().Named)
	if err != nil {
		reports.Close()
		return nil, nil, err
	}
	if cfg.Reports != nil {
		log.Info().Int("reports", len(cfg.Reports.Reports)).Int("backends", len(cfg.Reports.Backends)).Msg("report catalogue")
	}
	return measured, reports.Close, nil
}

// newScheduler starts the warming plans of DASHCACHE_SCHEDULE_FILE (see
// newPlans), sized with what the fleet reports and their deadline margins
// in reg.
func newScheduler(cfg Config, r *redisParts, queue *jobs.Enqueuer, bi *guard.Guard, def provider.Source, reg prometheus.Registerer, log zerolog.Logger) (*scheduler.Scheduler, error) {
	sc, err := newPlans(cfg, r, queue, bi, def, capacityGiven{}, reg, log)
	if err != nil {
		return nil, err
	}
	if err := sc.Start(context.Background()); err != nil {
		return nil, err
	}
	log.Info().Str("file", cfg.ScheduleFile).Int("plans", len(sc.Plans())).Msg("warming plans scheduled")
	return sc, nil
}

func serveFakeBI(ctx context.Context, cfg Config, log zerolog.Logger) error {
	sim := newSimulator(cfg)
	lo, hi := sim.Latency()
	log.Info().Dur("min_latency", lo).Dur("max_latency", hi).
		Bool("token_required", cfg.ProviderToken != "").Msg("simulated BI platform")
	return serveHTTP(ctx, cfg.Listen, sim.Handler(), nil, log, nil, drain{}, nil, connCap(cfg))
}

// sharedRedis hands asynqmon our Redis client instead of a second pool.
type sharedRedis struct{ redis.UniversalClient }

func (s sharedRedis) MakeRedisClient() any { return s.UniversalClient }
