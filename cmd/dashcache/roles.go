package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
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

// roles are the long-running roles; warm is a one-shot command (warm.go).
var roles = map[string]func(context.Context, Config, zerolog.Logger) error{
	"all":       withRedis(true, serveAPI, startWorker, startScheduler),
	"api":       withRedis(false, serveAPI),
	"worker":    withRedis(false, serveHealth, startWorker),
	"scheduler": withRedis(false, serveHealth, startScheduler),
	"fakebi":    runFakeBI,
}

// deps are what the parts of one process share: one Redis client, one
// metrics registry, one enqueuer, and one BI platform client, built when
// first needed.
type deps struct {
	cfg    Config
	log    zerolog.Logger
	rdb    redis.UniversalClient
	reg    *prometheus.Registry
	enq    *jobs.Enqueuer
	source func() (provider.Source, error)
}

// A part is a background piece of a role; stop (nil if it did not start)
// shuts it down gracefully.
type part func(d *deps) (stop func(), err error)

// withRedis builds a role: it opens Redis (the embedded one if allowed and no
// URL is set), starts the parts, and serves HTTP until ctx ends; then it stops
// the parts in reverse order.
func withRedis(embeddedOK bool, serve func(context.Context, *deps) error, parts ...part) func(context.Context, Config, zerolog.Logger) error {
	return func(ctx context.Context, cfg Config, log zerolog.Logger) error {
		rdb, closeRedis, err := openRedis(cfg, log, embeddedOK)
		if err != nil {
			return err
		}
		defer closeRedis()
		reg := prometheus.NewRegistry()
		reg.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
			metrics.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(rdb)),
		)
		d := &deps{cfg: cfg, log: log, rdb: rdb, reg: reg, enq: jobs.NewEnqueuer(rdb, reg)}
		d.source = sync.OnceValues(func() (provider.Source, error) { return newSource(cfg, rdb, reg, log) })
		for _, start := range parts {
			stop, err := start(d)
			if err != nil {
				return err
			}
			if stop != nil {
				defer stop()
			}
		}
		return serve(ctx, d)
	}
}

// serveHealth serves /healthz, /readyz and /metrics for the roles without the
// API.
func serveHealth(ctx context.Context, d *deps) error {
	mux := http.NewServeMux()
	api.HandleHealth(mux, store.New(d.rdb), d.log)
	mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	return serveHTTP(ctx, d.cfg.Listen, mux, d.log, nil, nil)
}

func runFakeBI(ctx context.Context, cfg Config, log zerolog.Logger) error {
	sim := newSimulator(cfg)
	log.Info().Dur("min_latency", cfg.SimLatencyMin).Dur("max_latency", cfg.SimLatencyMax).
		Bool("token_required", cfg.ProviderToken != "").Msg("simulated BI platform")
	return serveHTTP(ctx, cfg.Listen, sim.Handler(), log, nil, nil)
}
func newSimulator(cfg Config) *provider.Simulator {
	maxLatency := cfg.SimLatencyMax
	if maxLatency == 0 {
		maxLatency = -1 // SimConfig: both zero means the default 2-5 s; we want none
	}
	return provider.NewSimulator(provider.SimConfig{
		MinLatency: cfg.SimLatencyMin,
		MaxLatency: maxLatency,
		Token:      cfg.ProviderToken,
	})
}

// newSource returns the BI platform (or the simulator), measured, behind the
// fleet-wide rate limit.
func newSource(cfg Config, rdb redis.UniversalClient, reg prometheus.Registerer, log zerolog.Logger) (provider.Source, error) {
	var src provider.Source
	if cfg.ProviderURL == "" {
		log.Info().Msg("no DASHCACHE_PROVIDER_URL: the built-in simulated BI platform answers queries")
		src = newSimulator(cfg)
	} else {
		c, err := provider.NewClient(provider.ClientConfig{BaseURL: cfg.ProviderURL, Token: cfg.ProviderToken, Timeout: cfg.ProviderTimeout})
		if err != nil {
			return nil, err
		}
		src = c
	}
	return provider.NewLimited(provider.NewMeasured(src, reg), provider.LimitConfig{
		Redis: rdb, Rate: cfg.ProviderRate, RateKey: store.RateLimitKey, PauseKey: store.ProviderPauseKey,
	})
}

// startWorker starts the asynq server that fills reports through the
// rate-limited BI platform; stop shuts it down gracefully.
func startWorker(d *deps) (stop func(), err error) {
	src, err := d.source()
	if err != nil {
		return nil, err
	}
	h, err := jobs.NewHandler(jobs.HandlerConfig{Store: store.New(d.rdb), Source: src, Log: d.log, Zone: d.cfg.Zone, Registerer: d.reg})
	if err != nil {
		return nil, err
	}
	srv, mux := jobs.NewServer(d.rdb, h, jobs.ServerConfig{Concurrency: d.cfg.WorkerConcurrency, Log: d.log})
	if err := srv.Start(mux); err != nil {
		return nil, fmt.Errorf("starting worker: %w", err)
	}
	return srv.Shutdown, nil
}

// startScheduler runs the warming plans of DASHCACHE_SCHEDULE_FILE, if set;
// stop ends them, letting a running firing finish.
func startScheduler(d *deps) (stop func(), err error) {
	if d.cfg.ScheduleFile == "" {
		return nil, nil
	}
	file, err := scheduler.LoadFile(d.cfg.ScheduleFile)
	if err != nil {
		return nil, fmt.Errorf("DASHCACHE_SCHEDULE_FILE: %w", err)
	}
	src, err := d.source()
	if err != nil {
		return nil, err
	}
	zone := d.cfg.Zone
	if file.Timezone != "" {
		zone = nil // the plan file's own timezone wins
	}
	sc, err := scheduler.New(scheduler.Config{
		File: file,
		Zone: zone,
		Enqueue: func(ctx context.Context, k dashcache.ReportKey) (bool, error) {
			return d.enq.Enqueue(ctx, k, jobs.QueueWarming, dashcache.Refresh{})
		},
		Customers: src.Customers,
		Log:       d.log,
	})
	if err != nil {
		return nil, err
	}
	if err := sc.Start(context.Background()); err != nil {
		return nil, err
	}
	d.log.Info().Str("file", d.cfg.ScheduleFile).Int("plans", len(file.Plans)).Msg("warming plans scheduled")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sc.Shutdown(ctx)
	}, nil
}

// serveAPI serves the read API until ctx ends, then answers waiting readers
// and drains connections.
func serveAPI(ctx context.Context, d *deps) error {
	srv, err := api.New(api.Config{
		Store: store.New(d.rdb),
		Enqueue: func(ctx context.Context, k dashcache.ReportKey) (bool, error) {
			return d.enq.Ensure(ctx, k, jobs.QueueInteractive)
		},
		Warm: func(ctx context.Context, k dashcache.ReportKey, r dashcache.Refresh) (bool, error) {
			return d.enq.Enqueue(ctx, k, jobs.QueueWarming, r)
		},
		APIKeys:    d.cfg.APIKeys,
		AdminToken: d.cfg.AdminToken,
		Monitoring: asynqmon.New(asynqmon.Options{
			RootPath:     "/monitoring",
			RedisConnOpt: sharedRedis{d.rdb},
			ReadOnly:     d.cfg.MonitoringReadOnly,
		}),
		Metrics:    promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}),
		Registerer: d.reg,
		Log:        d.log,
		Zone:       d.cfg.Zone,
	})
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Start(startCtx); err != nil {
		return fmt.Errorf("starting API: %w", err)
	}
	hint := func(addr net.Addr) {
		d.log.Info().Msgf("try: curl -i 'http://%s/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31'", addr)
	}
	return serveHTTP(ctx, d.cfg.Listen, srv.Handler(), d.log, hint, srv.Shutdown)
}

// sharedRedis hands asynqmon our Redis client instead of a second pool.
type sharedRedis struct{ redis.UniversalClient }

func (s sharedRedis) MakeRedisClient() any { return s.UniversalClient }

// serveHTTP serves h on addr until ctx ends; then it runs beforeDrain (if any)
// and shuts the server down gracefully. listening (if any) is told the address.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log zerolog.Logger, listening func(net.Addr), beforeDrain func(context.Context) error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s (DASHCACHE_LISTEN): %w", addr, err)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      api.MaxWait + 15*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("listening")
	if listening != nil {
		listening(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if beforeDrain != nil {
		beforeDrain(sctx)
	}
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newLogger(cfg Config, out io.Writer) zerolog.Logger {
	if cfg.LogFormat == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	level, _ := zerolog.ParseLevel(cfg.LogLevel) // checked by loadConfig
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}
