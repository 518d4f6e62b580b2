// Package api is dashcache's HTTP API. GET /v1/reports serves a cached
// report: from the process's L1 (kept exact by the fill notifications, and
// answered on fasthttp by ServeFast), else from Redis in one round trip, which
// puts it in L1; on a miss it has one deduped fill task enqueued and waits,
// notified, for the fill. The admin endpoints (warm, invalidate, usage, the
// asynq web UI, metrics) sit behind Auth. Errors are problem+json.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/tracing"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
)

// Limits of the wait query parameter.
const (
	DefaultWait = 10 * time.Second
	MaxWait     = 30 * time.Second
)

// Queue is what the API needs of the task queue; jobs.Enqueuer is one.
type Queue interface {
	// Ensure makes sure a report that a reader waits for is being filled;
	// enqueued is false when its task was already there. Readers who keep
	// waiting call it again every few seconds, so it may also rescue a dead
	// worker's task.
	Ensure(ctx context.Context, k dashcache.ReportKey) (enqueued bool, err error)
	// Warm enqueues a fill task: for POST /v1/warm, and to refresh a stale
	// report or one near its expiry.
	dashcache.Warmer
	// Invalidate serves POST /v1/invalidate.
	dashcache.Invalidator
}

// Cache is what the API needs of the report cache; *store.Cache is one.
type Cache interface {
	Get(ctx context.Context, k dashcache.ReportKey) (string, error)
	Lookup(ctx context.Context, keys ...dashcache.ReportKey) ([]store.Found, error)
	Subscribe(ctx context.Context, l store.Listener) (*store.Subscription, error)
	AnswerHandOver(ctx context.Context, reply string) error
}

// Reads takes the reads this process saw; *store.Index is one.
type Reads interface {
	RecordReads(ctx context.Context, reads map[dashcache.ReportKey]time.Time) error
}

// Usage tells today's BI calls and refusals; *guard.Guard is one.
type Usage interface {
	Usage(ctx context.Context) (dashcache.Usage, error)
}

// Pinger says whether Redis answers, and takes writes: every Redis the
// process uses.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config configures the API server.
type Config struct {
	Cache Cache // required
	Queue Queue // required
	// Reads, when ReadWithin is set, takes the reads seen. Required then.
	Reads Reads
	// Usage serves GET /v1/usage. Required.
	Usage Usage
	// Redis is pinged by /readyz. Required.
	Redis Pinger
	// Auth says who may call; its Registerer is Config's.
	Auth AuthConfig
	// Monitoring, when set, is served under /monitoring/ to admins (the asynq
	// web UI, built with that root path).
	Monitoring http.Handler
	// Metrics, when set, is served at /metrics (Prometheus).
	Metrics http.Handler
	// Registerer receives dashcache_reads_total,
	// dashcache_report_reads_total, dashcache_fill_wait_seconds and
	// dashcache_l1_subscription_up. Default: not exported.
	Registerer prometheus.Registerer
	Log        zerolog.Logger   // default: no logs
	Now        func() time.Time // default time.Now
	Zone       *time.Location   // where "today" is; default UTC
	// Earliest is the earliest date a range may start at; default:
	// dashcache.HorizonYears before today.
	Earliest time.Time
	// L1Bytes bounds the reports this process holds in memory to serve hits
	// without Redis (DefaultL1Bytes is the setting's default); 0: none.
	L1Bytes int64
	// Reports are the reports served: the catalogue's, read at
	// GET /v1/reports/{name}, and the default report at GET /v1/reports
	// unless Reports.NoDefault. Default: the default report alone.
	Reports dashcache.Served
	// ReadWithin is how lately a report must have been read for an
	// invalidation to refresh it at once (dashcache.DefaultReadWithin is the
	// setting's default); 0: reads are not tracked, and invalidations
	// refresh nothing at once.
	ReadWithin time.Duration
	// Tracing, when set, traces every request: a span each (on both the
	// fasthttp and the net/http path), linked to the fill that woke it.
	// Default: none, at no cost to a hit.
	Tracing trace.TracerProvider
}

// Server serves the read API. Start it before serving, Shutdown it after.
type Server struct {
	cfg     Config
	auth    *Auth
	reports map[string]bool // the catalogue's, by name
	l1      *l1
	reads   *reads // nil: reads are not tracked
	waiters waiters
	mux     *http.ServeMux
	metrics *metrics
	tracer  trace.Tracer // nil: not traced

	// beforeWait, when set (tests), runs between a reader's failed cache
	// check and its registration for the fill notification.
	beforeWait func(dashcache.ReportKey)
	// random returns a number in [0, 1) for early refresh; tests fix it.
	random func() float64
	// reassertEvery is how often the readers of one wait call Queue.Ensure
	// again.
	reassertEvery time.Duration
	// refreshing holds, per report, when this process may next ask
	// for its refresh (askInFlight while it asks).
	refreshing sync.Map
	// background counts the work started by goBackground; bgMu orders its
	// starts before Shutdown's wait.
	background sync.WaitGroup
	bgMu       sync.Mutex
	// flushing serializes the hand-overs of reads to Redis.
	flushing sync.Mutex

	startOnce sync.Once
	startErr  error
	closing   chan struct{}
	closeOnce sync.Once
	sub       *store.Subscription
	listening sync.WaitGroup
}

// New returns an API server.
func New(cfg Config) (*Server, error) {
	if cfg.Cache == nil || cfg.Queue == nil || cfg.Usage == nil || cfg.Redis == nil || cfg.ReadWithin > 0 && cfg.Reads == nil {
		return nil, errors.New("api: Config needs Cache, Queue, Usage and Redis, and Reads with ReadWithin")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Zone == nil {
		cfg.Zone = time.UTC
	}
	cfg.Log = cfg.Log.With().Str("component", "api").Logger()
	local := newL1(cfg.L1Bytes)
	m, err := newMetrics(cfg.Registerer, cfg.Reports.Named, local)
	if err != nil {
		return nil, err
	}
	cfg.Auth.Registerer = cfg.Registerer
	auth, err := NewAuth(cfg.Auth)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, auth: auth, l1: local, waiters: waiters{m: map[string]*wait{}}, closing: make(chan struct{}), metrics: m, random: rand.Float64, reassertEvery: 2 * time.Second}
	if cfg.ReadWithin > 0 {
		s.reads = new(reads)
	}
	if cfg.Tracing != nil {
		s.tracer = tracing.Tracer(cfg.Tracing, "api")
	}
	s.reports = map[string]bool{}
	for _, name := range cfg.Reports.Named {
		s.reports[name] = true
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc(readsPath, s.getReport)
	s.mux.HandleFunc(readsPath+"/", s.getReport)
	s.mux.Handle("/v1/warm", auth.Admin(http.HandlerFunc(s.postWarm)))
	s.mux.Handle("/v1/usage", auth.Admin(http.HandlerFunc(s.getUsage)))
	s.mux.Handle("/v1/invalidate", auth.Admin(http.HandlerFunc(s.postInvalidate)))
	if cfg.Monitoring != nil {
		s.mux.Handle("/monitoring/", auth.Admin(cfg.Monitoring))
		s.mux.Handle("/monitoring", http.RedirectHandler("/monitoring/", http.StatusMovedPermanently))
	}
	if cfg.Metrics != nil {
		s.mux.Handle("/metrics", auth.Metrics(cfg.Metrics))
	}
	HandleHealth(s.mux, cfg.Redis, cfg.Log)
	s.mux.HandleFunc("/openapi.yaml", serveOpenAPI)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, fmt.Sprintf("there is no resource at %s; reports are at GET /v1/reports?customer=C&from=YYYY-MM-DD&to=YYYY-MM-DD", r.URL.Path))
	})
	return s, nil
}

// Start subscribes to fill notifications (and to invalidations' asks for
// the reads seen); it returns once the subscription is confirmed, so that no
// fill announced after Start is missed. Calling it twice is safe.
func (s *Server) Start(ctx context.Context) error {
	s.startOnce.Do(func() {
		sub, err := s.cfg.Cache.Subscribe(ctx, store.Listener{Filled: s.filled, HandOver: s.handOver, Up: s.subscribed})
		if err != nil {
			s.startErr = err
			return
		}
		s.sub = sub
		s.l1.setUp(true)
		s.listening.Add(1)
		go func() {
			defer s.listening.Done()
			sub.Run(context.Background())
		}()
		if s.reads != nil {
			s.goBackground(func() { s.flushReadsEvery(readsFlush) })
		}
	})
	return s.startErr
}

// subscribed is told when the subscription to fill notifications goes down
// and when it is back: L1 empties, keeping aside what it held to serve it
// stale to reads that find Redis failing.
func (s *Server) subscribed(up bool) {
	s.l1.setUp(up)
	if up {
		s.cfg.Log.Info().Msg("fill notifications back: L1 serves hits again")
		return
	}
	s.cfg.Log.Warn().Msg("fill notifications lost (Redis unreachable?): L1 emptied until they are back; if Redis fails, the reports it held are served stale (X-Cache-Reason: redis-unavailable)")
}

// filled takes a fill notification: L1 drops the report before its readers
// are woken, so that none of them, nor any later reader, gets the old bytes.
func (s *Server) filled(canonical string, fill trace.SpanContext) {
	s.l1.drop(canonical)
	s.waiters.wake(canonical, fill)
}

// Shutdown answers every waiting reader (202: still pending), hands the
// reads seen to Redis and ends the subscription. Calling it twice is safe.
func (s *Server) Shutdown(context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		s.bgMu.Lock()
		close(s.closing)
		s.bgMu.Unlock()
		if s.sub != nil {
			err = s.sub.Close()
		}
		s.l1.setUp(false) // no more notifications: no more L1 hits, while the server drains
		s.listening.Wait()
		s.background.Wait()
	})
	return err
}

// goBackground runs fn in the background, for Shutdown to wait for, unless
// the server is shutting down: then it returns false.
func (s *Server) goBackground(fn func()) bool {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	select {
	case <-s.closing:
		return false
	default:
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		fn()
	}()
	return true
}

// Handler returns the HTTP handler with access logs.
func (s *Server) Handler() http.Handler {
	h := accessLog(s.cfg.Log, s.mux)
	if s.tracer == nil {
		return h
	}
	return otelhttp.NewHandler(h, "dashcache", otelhttp.WithTracerProvider(s.cfg.Tracing),
		otelhttp.WithPropagators(tracing.Propagator()),
		otelhttp.WithFilter(func(r *http.Request) bool { // probes and scrapes are not traces
			return r.URL.Path != "/healthz" && r.URL.Path != "/readyz" && r.URL.Path != "/metrics"
		}),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + route(r.URL.Path) }))
}

// route names a request's path in a span's name, from a small fixed set:
// the report's name and unknown paths are not in it.
func route(path string) string {
	switch {
	case path == readsPath, path == "/v1/warm", path == "/v1/invalidate", path == "/v1/usage",
		path == "/metrics", path == "/healthz", path == "/readyz", path == "/openapi.yaml":
		return path
	case strings.HasPrefix(path, readsPath+"/"):
		return readsPath + "/{name}"
	case strings.HasPrefix(path, "/monitoring"):
		return "/monitoring"
	}
	return "other"
}

// ErrDraining is what a Pinger answers while the process drains before it
// stops: /readyz turns 503 so that load balancers stop sending requests,
// which are still served meanwhile.
var ErrDraining = errors.New("draining: this process is shutting down")

// NotReady is an error a Pinger answers with when it knows what is wrong and
// what to do: /readyz answers 503 with Detail, and logs Err.
type NotReady struct {
	Detail string
	Err    error
}

func (e *NotReady) Error() string { return e.Detail + ": " + e.Err.Error() }
func (e *NotReady) Unwrap() error { return e.Err }

// HandleHealth registers on mux /healthz (the process is up) and /readyz
// (redis takes writes: 200, else 503 with the detail of a *NotReady; 503
// too while draining), for every role's listener.
func HandleHealth(mux *http.ServeMux, redis Pinger, log zerolog.Logger) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		err := redis.Ping(ctx)
		if errors.Is(err, ErrDraining) {
			problem(w, http.StatusServiceUnavailable, "this instance is shutting down: it serves the requests it gets while load balancers stop sending them (DASHCACHE_DRAIN)")
			return
		}
		var nr *NotReady
		switch {
		case errors.As(err, &nr):
			log.Warn().Err(nr.Err).Str("detail", nr.Detail).Msg("not ready")
			problem(w, http.StatusServiceUnavailable, nr.Detail)
			return
		case err != nil:
			log.Warn().Err(err).Msg("not ready: Redis unreachable")
			problem(w, http.StatusServiceUnavailable, "Redis is unreachable; this instance cannot work until it is back")
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ready\n")
	})
}

func (s *Server) getReport(w http.ResponseWriter, r *http.Request) {
	report, ok := s.reportAt(r.URL.Path)
	if !ok {
		report = "" // no report of the catalogue: counted in the total alone
	}
	s.metrics.read(report, s.readReport(w, r))
}

// Results of a read, as in dashcache_reads_total{result}.
const (
	resultHit   = "hit"
	resultMiss  = "miss"
	resultStale = "stale"
	// resultStaleIfError is a report served stale from what L1 kept, because
	// Redis is unreachable (X-Cache: stale, X-Cache-Reason:
	// redis-unavailable).
	resultStaleIfError = "stale_if_error"
	resultPending      = "pending"
	resultRefused      = "refused"  // 429, or 503 while the breaker is open
	resultCanceled     = "canceled" // the reader hung up before the answer
	resultError        = "error"
)

// readReport answers a read and returns its result.
func (s *Server) readReport(w http.ResponseWriter, r *http.Request) string {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem(w, http.StatusMethodNotAllowed, "reports are read with GET /v1/reports?customer=C&from=YYYY-MM-DD&to=YYYY-MM-DD")
		return resultError
	}
	acc, ok := s.auth.authenticate(w, r)
	if !ok {
		return resultError
	}
	report, ok := s.reportAt(r.URL.Path)
	if !ok {
		problem(w, http.StatusNotFound, s.noReport(r.URL.Path))
		return resultError
	}
	k, wait, err := s.parseQuery(report, r.URL.RawQuery)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return resultError
	}
	if !acc.allows(k.Customer) {
		problem(w, http.StatusForbidden, fmt.Sprintf("this API key may not read customer %q", k.Customer))
		return resultError
	}
	now := s.cfg.Now()
	rep, err := s.readCached(r.Context(), k, now)
	if err != nil {
		if rep = s.l1.kept(k, now); rep != nil {
			if result, ok := s.serve(w, r, rep, resultStaleIfError, now); ok {
				return result
			}
		}
		return s.unavailable(w, r, err)
	}
	if rep != nil {
		if result, ok := s.serveCached(w, r, rep, now); ok {
			return result
		}
	}
	start := time.Now()
	defer func() { s.metrics.fillWait.Observe(time.Since(start).Seconds()) }()
	return s.miss(w, r, k, wait)
}

// errRedisDown answers, at once, the reads of reports that L1 did not keep
// while Redis is taken for unreachable (l1.redisDown).
var errRedisDown = errors.New("Redis is taken for unreachable: a read failed while the fill notifications' subscription is down, and it is not back")

// readCached records a read of k and returns its report from L1, or else
// from Redis (and holds it in L1); nil if it is not cached, or its entry is
// corrupt. A partitioned report's answer is assembled from its months, in
// one round trip; nil if one is missing. While Redis is taken for
// unreachable it fails at once with errRedisDown, without a Redis call.
func (s *Server) readCached(ctx context.Context, k dashcache.ReportKey, now time.Time) (*report, error) {
	if rep := s.l1.get(k, now); rep != nil {
		s.reads.record(k, nil, rep, now)
		return rep, nil
	}
	part := s.cfg.Reports.Partition(k.Report)
	var months []dashcache.ReportKey
	if part != nil {
		months = dashcache.Months(k)
	}
	s.reads.record(k, months, nil, now)
	if s.l1.redisDown() {
		return nil, errRedisDown
	}
	seq := s.l1.begin()
	if part != nil {
		found, err := s.cfg.Cache.Lookup(ctx, months...)
		s.redisAnswered(ctx, err)
		if err != nil {
			return nil, err
		}
		rep, _, size, err := s.assemble(k, part, months, found, now)
		if err != nil {
			return nil, nil // the miss answers it
		}
		if rep != nil {
			s.l1.put(rep, size, seq)
		}
		return rep, nil
	}
	raw, err := s.cfg.Cache.Get(ctx, k)
	s.redisAnswered(ctx, err)
	if err != nil {
		return nil, err
	}
	rep := s.parseEntry(k, raw)
	if rep != nil {
		s.l1.put(rep, len(raw), seq)
	}
	return rep, nil
}

// redisAnswered tells L1 how a read's call to Redis went: a failure (not a
// reader who left) may have Redis taken for unreachable; a success lets go
// of the reports kept from before the subscription went down.
func (s *Server) redisAnswered(ctx context.Context, err error) {
	switch {
	case err == nil:
		s.l1.answered()
	case ctx.Err() == nil:
		s.l1.failed()
	}
}

// miss serves a report that was not cached (or whose entry is corrupt): it
// enqueues the fill once for all readers of the key in this process, and
// waits for its notification. The reader registers for the notification
// before it looks at the cache again (report and remembered failure in one
// round trip, before any enqueue), so a fill that lands in between is seen
// either by the look or by the notification. A partitioned report's reader
// does so for each of its months, and has the missing ones filled.
func (s *Server) miss(w http.ResponseWriter, r *http.Request, k dashcache.ReportKey, within time.Duration) string {
	if s.beforeWait != nil {
		s.beforeWait(k)
	}
	keys := s.cfg.Reports.Fills(k)
	names := make([]string, len(keys))
	for i, f := range keys {
		names[i] = f.String()
	}
	wts := make([]*wait, len(keys))
	timer := time.NewTimer(within)
	defer timer.Stop()
	var tick <-chan time.Time // none in tests that ask for no interval
	if s.reassertEvery > 0 {
		ticker := time.NewTicker(s.reassertEvery)
		defer ticker.Stop()
		tick = ticker.C
	}
	// Each round registers for the notification before it looks at the
	// cache. A notification is only a hint: one that finds nothing (another
	// installation sharing the Redis server, whose pub/sub spans all
	// databases) starts another round, and so does every tick of a long
	// wait, which asks for the fill again: a notification lost while Redis
	// restarted, a task lost with it, or a dead worker's task rescued.
	for round := 0; ; round++ {
		for i, name := range names {
			wts[i] = s.waiters.join(name)
		}
		result, err := s.waitRound(w, r, k, keys, wts, timer.C, tick, within == 0)
		for i, name := range names {
			s.waiters.leave(name, wts[i])
		}
		switch {
		case err != nil && round == 0:
			return s.unavailable(w, r, err)
		case err != nil:
			// Redis failed during the wait: the reader waits on, for it to
			// come back.
			s.cfg.Log.Debug().Err(err).Str("key", k.String()).Msg("a waiting reader's round failed")
			if result = s.waitOn(r, timer.C, tick, nil); result != "" {
				return s.answerEnd(w, result)
			}
		case result != "":
			return result
		}
	}
}

// waitRound is one round of a miss: look at the cache, enqueue each
// missing one of keys (k, or its months; shared by the wait's readers, wts
// the waits of keys), and wait for the first one's notification, the next
// tick, the timeout or the end. It returns "" to go on waiting.
func (s *Server) waitRound(w http.ResponseWriter, r *http.Request, k dashcache.ReportKey, keys []dashcache.ReportKey, wts []*wait, timeout, tick <-chan time.Time, noWait bool) (string, error) {
	ctx := r.Context()
	result, missing, err := s.lookup(w, r, k, keys)
	if result != "" || err != nil {
		return result, err
	}
	for _, i := range missing {
		asked, err := wts[i].enqueue(ctx, s.reassertEvery, func(ctx context.Context) error {
			_, err := s.cfg.Queue.Ensure(ctx, keys[i])
			return err
		})
		var refusal *dashcache.Refusal
		switch {
		case errors.As(err, &refusal) && asked:
			// The fill asked for before goes on, and may yet be served.
			s.cfg.Log.Debug().Str("key", keys[i].String()).Str("reason", refusal.Reason).Msg("a waiting reader's fill was refused again")
		case errors.As(err, &refusal):
			return refused(w, refusal), nil
		case err != nil:
			return "", err
		}
	}
	if noWait {
		return pending(w), nil
	}
	wt := wts[missing[0]]
	end := s.waitOn(r, timeout, tick, wt.done)
	if end == "" && closed(wt.done) && wt.fill.IsValid() {
		// Woken by a traced fill: one fill, several readers, so a link.
		trace.SpanFromContext(ctx).AddLink(trace.Link{SpanContext: wt.fill})
	}
	return s.answerEnd(w, end), nil
}

// waitOn waits for a fill notification (on done; nil: none), the next tick,
// the end of the reader's wait, the server's or the reader's. It returns ""
// for another round, endTimeout or resultCanceled.
func (s *Server) waitOn(r *http.Request, timeout, tick <-chan time.Time, done <-chan struct{}) string {
	select {
	case <-done:
	case <-tick:
	case <-timeout:
		return endTimeout
	case <-s.closing:
		return endTimeout
	case <-r.Context().Done():
		return resultCanceled
	}
	return ""
}

// endTimeout is the end of a wait that found no report: the reader is told
// to come back (202).
const endTimeout = "timeout"

// answerEnd answers the end of a wait: 202 when it ran out; nothing to a
// reader who left. Another round ("") is passed on.
func (s *Server) answerEnd(w http.ResponseWriter, end string) string {
	if end == endTimeout {
		return pending(w)
	}
	return end
}

// lookup serves the report of k (from keys: k, or its months) or a
// remembered failure, if either is there, and returns the result, or ""
// (nothing written) and the indexes of the keys missing, for the caller to
// have them filled and go on waiting. A corrupt entry counts as none: the
// fill replaces it.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, k dashcache.ReportKey, keys []dashcache.ReportKey) (string, []int, error) {
	found, err := s.cfg.Cache.Lookup(r.Context(), keys...)
	if err != nil {
		return "", nil, err
	}
	now := s.cfg.Now()
	var rep *report
	missing := []int{0}
	if part := s.cfg.Reports.Partition(k.Report); part != nil {
		if rep, missing, _, err = s.assemble(k, part, keys, found, now); err != nil {
			problem(w, http.StatusBadGateway, err.Error())
			return resultError, nil, nil
		}
	} else {
		rep = s.parseEntry(k, found[0].Entry)
	}
	if rep != nil {
		if result, ok := s.serve(w, r, rep, resultMiss, now); ok {
			return result, nil, nil
		}
		missing = []int{0} // corrupt: refilled
	}
	for _, i := range missing {
		if found[i].Failure != "" {
			problem(w, http.StatusBadGateway, found[i].Failure)
			return resultError, nil, nil
		}
	}
	return "", missing, nil
}

func pending(w http.ResponseWriter) string {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"status":"pending"}`+"\n")
	return resultPending
}

// refused answers a fill the queue would not start: 503 while the breaker is
// open, else 429; with Retry-After and the refusal's detail.
func refused(w http.ResponseWriter, r *dashcache.Refusal) string {
	status := http.StatusTooManyRequests
	if r.Reason == dashcache.ReasonBreaker {
		status = http.StatusServiceUnavailable
	}
	setRetryAfter(w.Header(), r.RetryAfter)
	problem(w, status, r.Detail)
	return resultRefused
}

// setRetryAfter sets Retry-After to d in whole seconds, rounded up, at
// least 1.
func setRetryAfter(h http.Header, d time.Duration) {
	h.Set("Retry-After", strconv.FormatInt(int64(max((d+time.Second-1)/time.Second, 1)), 10))
}

// unavailable answers a failed Redis call with 503, or, if the reader hung
// up (which fails the call), with nothing: that is no error of ours.
func (s *Server) unavailable(w http.ResponseWriter, r *http.Request, err error) string {
	if r.Context().Err() != nil {
		s.cfg.Log.Debug().Err(err).Msg("the reader hung up")
		return resultCanceled
	}
	if errors.Is(err, errRedisDown) {
		s.cfg.Log.Debug().Err(err).Msg("read refused")
	} else {
		s.cfg.Log.Error().Err(err).Msg("Redis call failed")
	}
	problem(w, http.StatusServiceUnavailable, "the report cache (Redis) is unreachable; try again in a few seconds")
	return resultError
}

// serveCached serves a report found in the cache, as freshness says.
func (s *Server) serveCached(w http.ResponseWriter, r *http.Request, rep *report, now time.Time) (string, bool) {
	return s.serve(w, r, rep, s.freshness(rep, now), now)
}

// freshness returns how a cached report is served: fresh, as a hit; no
// longer fresh, as stale. A stale report, or a fresh one that XFetch picks
// for an early refresh, gets one refresh enqueued in the background, so that
// keys filled together do not all expire, and refill, together.
func (s *Server) freshness(rep *report, now time.Time) string {
	if rep.months != nil {
		return s.monthsFreshness(rep, now)
	}
	result := resultHit
	if !rep.Fresh(now) {
		result = resultStale
		s.refreshLater(rep.key, rep.ComputedAt)
	} else if s.refreshEarly(rep.ComputeTime, rep.FreshUntil, now) {
		s.refreshLater(rep.key, rep.ComputedAt)
	}
	return result
}

// monthsFreshness is freshness of an answer assembled from months: stale if
// one of them is, each month refreshed as freshness says of a report.
func (s *Server) monthsFreshness(rep *report, now time.Time) string {
	result := resultHit
	for _, m := range rep.months {
		if !now.Before(m.freshUntil) {
			result = resultStale
			s.refreshLater(m.key, m.computedAt)
		} else if s.refreshEarly(m.computeTime, m.freshUntil, now) {
			s.refreshLater(m.key, m.computedAt)
		}
	}
	return result
}

// refreshEarly is XFetch (Vattani et al., "Optimal probabilistic cache stampede
// prevention"): refresh with a probability that rises as expiry nears, scaled
// by how long the report took to compute: -computeTime * ln(U) >= time left
// before freshUntil.
func (s *Server) refreshEarly(computeTime time.Duration, freshUntil, now time.Time) bool {
	left := freshUntil.Sub(now)
	return float64(computeTime)*-math.Log(1-s.random()) >= float64(left)
}

// askInFlight, in Server.refreshing, marks a refresh being asked for.
var askInFlight = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// refreshLater enqueues, in the background, a refresh of a report computed at
// seen, unless this process asked for one lately: at most once per
// reassertEvery (after a refusal, its Retry-After), however many hits see
// the report stale, so that they cost no Redis call.
func (s *Server) refreshLater(k dashcache.ReportKey, seen time.Time) {
	if next, asked := s.refreshing.LoadOrStore(k, askInFlight); asked {
		if time.Now().Before(next.(time.Time)) || !s.refreshing.CompareAndSwap(k, next, askInFlight) {
			return
		}
	}
	s.goBackground(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := s.cfg.Queue.Warm(ctx, k, dashcache.Refresh{Seen: seen})
		wait := s.reassertEvery
		var refusal *dashcache.Refusal
		switch {
		case errors.As(err, &refusal): // the stale report goes on being served
			s.cfg.Log.Debug().Str("key", k.String()).Str("reason", refusal.Reason).Msg("refresh refused")
			wait = max(wait, refusal.RetryAfter)
		case err != nil:
			s.cfg.Log.Warn().Err(err).Str("key", k.String()).Msg("enqueueing a refresh")
		}
		next := time.Now().Add(wait)
		s.refreshing.Store(k, next)
		time.AfterFunc(wait, func() { s.refreshing.CompareAndDelete(k, next) })
	})
}

// parseEntry parses a cached entry into a report ready to serve; nil for
// none ("") and for a corrupt one, which is logged and then treated as a
// miss: the fill replaces it.
func (s *Server) parseEntry(k dashcache.ReportKey, raw string) *report {
	if raw == "" {
		return nil
	}
	e, err := store.ParseEntry(raw)
	if err != nil {
		s.cfg.Log.Warn().Err(err).Str("key", k.String()).Msg("corrupt cache entry; refilling it")
		return nil
	}
	return newReport(k, e)
}

// serve writes a cached report as the response, as answerFor says: headers
// from its metadata, the body copied verbatim. It returns result (hit, miss,
// stale or stale_if_error); ok is false, and nothing is written, for a
// corrupt entry.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rep *report, result string, now time.Time) (string, bool) {
	a, ok := s.answerFor(rep, r.Header.Get("Accept-Encoding"), r.Header.Get("If-None-Match"))
	if !ok {
		return "", false
	}
	h := w.Header()
	rep.headers(&a, result, now, func(name string, value []string) { h[name] = value })
	if a.status == http.StatusNotModified {
		w.WriteHeader(http.StatusNotModified)
		return result, true
	}
	h["Content-Length"] = a.length
	if r.Method != http.MethodHead {
		io.WriteString(w, a.body)
	}
	return result, true
}

// answer is how a report answers one request.
type answer struct {
	status int      // 200, or 304 (no body)
	etag   []string // of the representation sent
	gzip   bool     // the body is sent compressed
	body   string
	length []string // of body
}

// answerFor returns how rep answers a request with these
// Accept-Encoding and If-None-Match headers: 304 if the client holds the
// representation it would get, else 200 with the body as stored (gzip to a
// client that accepts it) or decompressed. ok is false for a compressed body
// that does not decompress: a corrupt entry (logged).
func (s *Server) answerFor(rep *report, acceptEncoding, ifNoneMatch string) (a answer, ok bool) {
	a.gzip = rep.Gzip && acceptsGzip(acceptEncoding)
	a.etag = rep.etag
	if a.gzip {
		a.etag = rep.gzipETag
	}
	if ifNoneMatch != "" && etagMatches(ifNoneMatch, a.etag[0]) {
		a.status = http.StatusNotModified
		return a, true
	}
	a.status, a.body, a.length = http.StatusOK, rep.Body, rep.length
	if rep.Gzip && !a.gzip {
		plain, err := s.decompressed(rep)
		if err != nil {
			s.cfg.Log.Warn().Err(err).Msg("corrupt cache entry; refilling it")
			return answer{}, false
		}
		a.body, a.length = plain.body, plain.length
	}
	return a, true
}

// decompressed returns the JSON of the compressed report rep: decompressed
// once, and then kept with the report, if L1 holds it and takes the charge;
// else at each call.
func (s *Server) decompressed(rep *report) (*plainBody, error) {
	if p := rep.json.Load(); p != nil {
		return p, nil
	}
	body, err := rep.JSON()
	if err != nil {
		return nil, err
	}
	p := &plainBody{body, []string{strconv.Itoa(len(body))}}
	if rep.json.CompareAndSwap(nil, p) && !s.l1.charge(rep, len(body)) {
		rep.json.CompareAndSwap(p, nil)
	}
	return p, nil
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip: names
// it (or *) without q=0.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if coding = strings.TrimSpace(coding); coding != "gzip" && coding != "*" {
			continue
		}
		q, found := strings.CutPrefix(strings.ReplaceAll(params, " ", ""), "q=")
		if !found {
			return true
		}
		if v, err := strconv.ParseFloat(q, 64); err == nil && v > 0 {
			return true
		}
	}
	return false
}

// reportAt returns the report read at path: "" at readsPath, the name at
// readsPath/{name}; ok is false for a name the catalogue does not have, and
// at readsPath when there is no default report.
func (s *Server) reportAt(path string) (report string, ok bool) {
	if path == readsPath {
		return "", !s.cfg.Reports.NoDefault
	}
	name, found := strings.CutPrefix(path, readsPath+"/")
	return name, found && s.reports[name]
}

// noReport says that path names no report, and which there are.
func (s *Server) noReport(path string) string {
	if len(s.reports) == 0 {
		return fmt.Sprintf("there is no report at %s: this service has no report catalogue (DASHCACHE_REPORTS_FILE); read the default report at GET %s?customer=C&from=YYYY-MM-DD&to=YYYY-MM-DD", path, readsPath)
	}
	named := fmt.Sprintf("the reports are GET %s/{%s}", readsPath, strings.Join(slices.Sorted(maps.Keys(s.reports)), "|"))
	if s.cfg.Reports.NoDefault {
		return fmt.Sprintf("there is no report at %s: %s (there is no default report: DASHCACHE_PROVIDER_URL is not set)", path, named)
	}
	return fmt.Sprintf("there is no report at %s; %s and the default report at %s", path, named, readsPath)
}

// parseQuery parses a read's raw query of report (its name; "" the
// default): its key and how long it may wait.
func (s *Server) parseQuery(report, query string) (dashcache.ReportKey, time.Duration, error) {
	// The four parameters, read without building url.Values: this is the
	// hit path. Other parameters (cache busters) are ignored.
	var params [4]string // customer, from, to, wait
	var seen [4]int
	names := [4]string{"customer", "from", "to", "wait"}
	for rest := query; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		name, value, _ := strings.Cut(pair, "=")
		i := slices.Index(names[:], name)
		if i < 0 {
			continue
		}
		v, err := url.QueryUnescape(value)
		if err != nil {
			return dashcache.ReportKey{}, 0, fmt.Errorf("%s is not URL-encoded correctly: %v", name, err)
		}
		if seen[i]++; seen[i] > 1 {
			return dashcache.ReportKey{}, 0, fmt.Errorf("%s is given more than once; give it once", name)
		}
		params[i] = v
	}
	today := s.today()
	k, err := dashcache.ParseReportKey(params[0], params[1], params[2], today)
	k.Report = report
	if err == nil {
		err = k.CheckEarliest(dashcache.Earliest(s.cfg.Earliest, today))
	}
	if err != nil {
		return k, 0, err
	}
	wait := DefaultWait
	if v := params[3]; v != "" {
		wait, err = time.ParseDuration(v)
		if err != nil || wait < 0 || wait > MaxWait {
			return k, 0, fmt.Errorf("wait must be a duration from 0s to %s, such as 5s or 500ms; got %q", MaxWait, v)
		}
	}
	return k, wait, nil
}

// today is the current time in the service's zone.
func (s *Server) today() time.Time {
	return s.cfg.Now().In(s.cfg.Zone)
}

// etagMatches reports whether an If-None-Match header names etag (weak
// comparison, lists and * allowed).
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimSpace(part)
		if part == "*" || part == etag || part == "W/"+etag {
			return true
		}
	}
	return false
}
