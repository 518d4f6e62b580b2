package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/dashcache/dashcache/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// Every Redis call has these bounds, so an unreachable Redis shows as an error
// within seconds.
const (
	redisIOTimeout   = 2 * time.Second // dial, read, write
	redisPoolTimeout = 3 * time.Second // waiting for a free connection
	// redisDials is how many times a new connection is dialled before the
	// call fails: go-redis's default, 5 (each with the dial timeout), made a
	// call to a Redis cut off by a partition take 10 s and more.
	redisDials = 1
)

// openRedis connects to the Redis Cluster of DASHCACHE_REDIS_CLUSTER_ADDRS,
// to the primary that the sentinels of DASHCACHE_REDIS_SENTINEL_ADDRS name,
// to DASHCACHE_REDIS_URL or, with none (which LoadConfig allows only for a
// role that may run on it), starts an embedded in-process Redis.
func openRedis(cfg Config, log zerolog.Logger) (redis.UniversalClient, func(), error) {
	if len(cfg.RedisClusterAddrs) > 0 {
		return openRedisCluster(cfg, log)
	}
	if cfg.RedisSentinel.set() {
		rdb := openSentinel(cfg.RedisSentinel, "redis", log)
		return rdb, func() { rdb.Close() }, nil
	}
	var opt *redis.Options
	closeAll := func() {}
	if cfg.RedisURL == "" {
		m := miniredis.NewMiniRedis()
		m.ClockTTL(true) // TTLs run down in real time, as in Redis
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, nil, fmt.Errorf("starting embedded Redis: %w", err)
		}
		log.Warn().Str("redis_addr", m.Addr()).Msg("using an embedded in-process Redis: data is lost on exit; set DASHCACHE_REDIS_URL for a real one")
		opt = &redis.Options{Addr: m.Addr()}
		closeAll = m.Close
	} else {
		var err error
		if opt, err = redis.ParseURL(cfg.RedisURL); err != nil {
			return nil, nil, fmt.Errorf("DASHCACHE_REDIS_URL: %w", err)
		}
		log.Info().Str("redis_addr", opt.Addr).Int("redis_db", opt.DB).Msg("using Redis") // never the password
	}
	rdb := newClient(opt)
	return rdb, func() { rdb.Close(); closeAll() }, nil
}

// newClient returns a client for opt, a plain address, with the bounds
// every Redis call has, that follows the address when it moves to a new
// primary (movedPrimary).
func newClient(opt *redis.Options) *redis.Client {
	opt.DialTimeout = redisIOTimeout
	opt.ReadTimeout = redisIOTimeout
	opt.WriteTimeout = redisIOTimeout
	opt.PoolTimeout = redisPoolTimeout
	opt.DialerRetries = redisDials
	opt.MaxRetries = 1
	rdb := redis.NewClient(opt)
	rdb.AddHook(movedPrimary{})
	return rdb
}

// openSentinel returns a client of the primary that the sentinels of s name,
// with the bounds every Redis call has, and logs it under fields named after
// which ("redis", "cache_redis"), never a password. go-redis asks the
// sentinels for the primary's address at each new connection, and when they
// announce a failover (+switch-master) closes the connections to the old
// primary; a connection that answers READONLY is closed too.
func openSentinel(s Sentinel, which string, log zerolog.Logger) *redis.Client {
	log.Info().Strs(which+"_sentinel_addrs", s.Addrs).Str(which+"_sentinel_master", s.Master).Int(which+"_db", s.DB).
		Bool(which+"_auth", s.Password != "").Bool(which+"_sentinel_auth", s.SentinelPassword != "").
		Msg("using Redis through Sentinel")
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:       s.Master,
		SentinelAddrs:    s.Addrs,
		SentinelPassword: s.SentinelPassword,
		Password:         s.Password,
		DB:               s.DB,
		DialTimeout:      redisIOTimeout,
		ReadTimeout:      redisIOTimeout,
		WriteTimeout:     redisIOTimeout,
		PoolTimeout:      redisPoolTimeout,
		DialerRetries:    redisDials,
		MaxRetries:       1,
		Dialer:           sentinelDialer(s.Addrs),
	})
}

// sentinelDialTimeout bounds the dial of a sentinel of
// DASHCACHE_*_SENTINEL_ADDRS: a sentinel answers a few bytes from the
// operator's own network, and one that does not take a connection this soon
// is taken for gone.
const sentinelDialTimeout = 500 * time.Millisecond

// sentinelDialer dials the sentinels of addrs within sentinelDialTimeout,
// and anything else (the primary) within redisIOTimeout. go-redis asks the
// sentinel it last used for the primary, twice, before it asks the others,
// all within the context of the call that needs a connection: when that
// sentinel was cut off with the primary (on the same host), 2 s dials used
// up the short contexts of asynq's calls before the others were asked, and
// a worker stayed on the lost primary for 20 s and more
// (TestPartitionsSentinelFailover).
func sentinelDialer(addrs []string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: redisIOTimeout}
		if slices.Contains(addrs, addr) {
			d.Timeout = sentinelDialTimeout
		}
		return d.DialContext(ctx, network, addr)
	}
}

// redisParts is a process's Redis: the queue's (and the fleet's guards'
// and the index's), the cache's (the same Redis, or the one of
// DASHCACHE_CACHE_REDIS_URL or _SENTINEL_ADDRS), the store's parts over
// them, the Redis server's clock, and the count of their failed commands.
type redisParts struct {
	queue, cache         redis.UniversalClient
	queueName, cacheName redisName // what /readyz calls them
	process              string    // this process's own name in Redis (store.CheckWritable)
	store                store.Store
	clock                *store.Clock
	errors               *prometheus.CounterVec
	close                func()
}

// trace traces the commands of every Redis of the process with tp: their
// names, never their arguments (a connection's AUTH carries the password).
func (p *redisParts) trace(tp trace.TracerProvider) error {
	for _, rdb := range []redis.UniversalClient{p.queue, p.cache} {
		if err := redisotel.InstrumentTracing(rdb, redisotel.WithTracerProvider(tp),
			redisotel.WithDBStatement(false), redisotel.WithCallerEnabled(false)); err != nil {
			return fmt.Errorf("tracing Redis: %w", err)
		}
		if p.cache == p.queue {
			break
		}
	}
	return nil
}

// Ping checks that every Redis of the process takes writes, for /readyz: a
// replica (READONLY), a Redis loading its data (LOADING) or one that cannot
// be reached is an *api.NotReady saying which Redis and what to do.
func (p *redisParts) Ping(ctx context.Context) error {
	if err := store.CheckWritable(ctx, p.queue, p.process); err != nil {
		return p.queueName.notReady(err)
	}
	if p.cache == p.queue {
		return nil
	}
	if err := store.CheckWritable(ctx, p.cache, p.process); err != nil {
		return p.cacheName.notReady(err)
	}
	return nil
}

// redisName names one Redis of the process for a person: what it holds and
// the setting that points at it.
type redisName struct {
	what, setting   string
	sentinel        bool   // found through Sentinel
	sentinelSetting string // the setting that would find it through Sentinel
}

// notReady turns err, a failed write to the Redis n, into an *api.NotReady
// whose detail says what the answer means and what to do; the error itself
// (which may name addresses) is only logged.
func (n redisName) notReady(err error) error {
	this := fmt.Sprintf("%s (%s)", n.what, n.setting)
	var detail string
	var reply redis.Error
	switch {
	case redis.IsReadOnlyError(err) && n.sentinel:
		detail = this + " answers READONLY: the node reached is a replica. After a failover go-redis asks the sentinels for the new primary; " +
			"if this lasts, check that the sentinels agree on one (redis-cli -p 26379 SENTINEL get-master-addr-by-name NAME)"
	case redis.IsReadOnlyError(err):
		detail = this + " answers READONLY: the node it names is a replica, not the primary (a failover demoted it). " +
			"An address of one node does not follow a failover: point it at the new primary, at an address that moves with the primary " +
			"(a DNS name, a virtual IP, a proxy), or use Redis Sentinel (" + n.sentinelSetting + "); then restart this process"
	case redis.IsLoadingError(err):
		detail = this + " is loading its data into memory (LOADING): this instance is ready again once it has loaded"
	case redis.IsMasterDownError(err):
		detail = this + " answers MASTERDOWN: the node reached is a replica that lost its primary. Point the setting at the primary, or use Redis Sentinel"
	case redis.HasErrorPrefix(err, "OOM"):
		detail = this + " is full and refuses writes (OOM under maxmemory-policy noeviction): free memory or raise maxmemory"
	case errors.As(err, &reply) && reply.Error() != "":
		detail = this + " refuses writes (" + strings.Fields(reply.Error())[0] + "); see the log of this process for the whole answer"
	default:
		detail = this + " is unreachable; this instance cannot work until it answers again"
	}
	return &api.NotReady{Detail: detail, Err: err}
}

// newRedisErrors returns dashcache_redis_errors_total{redis}.
func newRedisErrors() *prometheus.CounterVec {
	return prom.CounterVec("dashcache_redis_errors_total",
		"Redis commands that failed (a pipeline counts once): no connection, a timeout, an error reply such as OOM; "+
			"not a missing key, nor a command whose caller gave up. redis: queue (DASHCACHE_REDIS_URL, the cluster or Sentinel) or cache (DASHCACHE_CACHE_REDIS_URL or its Sentinel).",
		"redis", "queue", "cache")
}

// errorCounter is a go-redis hook that counts the client's failed commands.
type errorCounter struct{ errors prometheus.Counter }

func (h errorCounter) DialHook(next redis.DialHook) redis.DialHook { return next } // a dial's failure fails its command

func (h errorCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd) // cmd.Err() is set after the hooks return
		if failed(ctx, cmd, err) {
			h.errors.Inc()
		}
		return err
	}
}

func (h errorCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			if failed(ctx, cmd, cmd.Err()) {
				h.errors.Inc()
				break
			}
		}
		return err
	}
}

// failed tells whether err, the outcome of cmd, is a failure of Redis. It is
// not for a missing key (redis.Nil), for NOSCRIPT (a script's first run on a
// server: go-redis then sends the script), when the caller's context ended,
// nor for the commands go-redis sends on each new connection (HELLO, CLIENT
// SETINFO...), whose errors it ignores: older servers lack some of them.
func failed(ctx context.Context, cmd redis.Cmder, err error) bool {
	if err == nil || ctx.Err() != nil || errors.Is(err, redis.Nil) || redis.HasErrorPrefix(err, "NOSCRIPT") {
		return false
	}
	return cmd.Name() != "hello" && cmd.Name() != "client"
}

// connect opens the Redis of cfg, checks that the queue's cannot evict, and
// starts the clock. An unreachable Redis (the queue's or the reports') is an
// error.
func connect(ctx context.Context, cfg Config, log zerolog.Logger) (*redisParts, error) {
	queue, closeQueue, err := openRedis(cfg, log)
	if err != nil {
		return nil, err
	}
	p := &redisParts{
		queue: queue, cache: queue, errors: newRedisErrors(), close: closeQueue,
		queueName: redisName{what: "the queue's Redis", setting: "DASHCACHE_REDIS_URL",
			sentinel: cfg.RedisSentinel.set(), sentinelSetting: "DASHCACHE_REDIS_SENTINEL_ADDRS"},
		process: rand.Text(),
	}
	switch {
	case len(cfg.RedisClusterAddrs) > 0:
		p.queueName.setting = "DASHCACHE_REDIS_CLUSTER_ADDRS"
	case p.queueName.sentinel:
		p.queueName.setting = p.queueName.sentinelSetting
	case cfg.RedisURL == "":
		p.queueName.setting = "embedded"
	}
	p.cacheName = p.queueName
	queue.AddHook(errorCounter{p.errors.WithLabelValues("queue")})
	fail := func(err error) (*redisParts, error) {
		p.close()
		return nil, err
	}
	// The clock's first TIME is the first call: an unreachable Redis fails
	// here, with that error.
	p.clock = store.NewClock(queue, nil)
	if err := p.clock.Start(ctx); err != nil {
		return fail(err)
	}
	p.close = func() { p.clock.Shutdown(); closeQueue() }
	var opts []store.Option
	if cfg.CacheRedisURL != "" || cfg.CacheRedisSentinel.set() {
		p.cacheName = redisName{what: "the reports' Redis", setting: "DASHCACHE_CACHE_REDIS_URL",
			sentinel: cfg.CacheRedisSentinel.set(), sentinelSetting: "DASHCACHE_CACHE_REDIS_SENTINEL_ADDRS"}
		if p.cacheName.sentinel {
			p.cacheName.setting = p.cacheName.sentinelSetting
			p.cache = openSentinel(cfg.CacheRedisSentinel, "cache_redis", log)
		} else {
			opt, err := redis.ParseURL(cfg.CacheRedisURL)
			if err != nil {
				return fail(fmt.Errorf("DASHCACHE_CACHE_REDIS_URL: %w", err))
			}
			p.cache = newClient(opt)
			log.Info().Str("cache_redis_addr", opt.Addr).Int("cache_redis_db", opt.DB).Msg("reports in a Redis of their own") // never the password
		}
		p.cache.AddHook(errorCounter{p.errors.WithLabelValues("cache")})
		closeOthers := p.close
		p.close = func() { p.cache.Close(); closeOthers() }
		opts = append(opts, store.WithCache(p.cache))
		if err := p.cache.Ping(ctx).Err(); err != nil {
			return fail(fmt.Errorf("%s (%s) is unreachable: %w", p.cacheName.what, p.cacheName.setting, err))
		}
	}
	p.store = store.New(queue, opts...)
	if cfg.RedisURL != "" || len(cfg.RedisClusterAddrs) > 0 || cfg.RedisSentinel.set() { // the embedded one cannot evict
		unchecked, err := store.CheckEviction(ctx, queue)
		if err != nil {
			return fail(err)
		}
		if len(unchecked) > 0 {
			log.Warn().Strs("redis_addrs", unchecked).Msg("cannot read maxmemory-policy (CONFIG GET refused): make sure it is noeviction, or Redis may evict the queue")
		}
	}
	return p, nil
}

// clusterDB checks DASHCACHE_REDIS_URL given with
// DASHCACHE_REDIS_CLUSTER_ADDRS, of which only the user, password and TLS
// are used: its database must be 0.
func clusterDB(u *redis.Options) error {
	if u.DB != 0 {
		return fmt.Errorf("database %d: a Redis Cluster has only database 0; "+
			"with DASHCACHE_REDIS_CLUSTER_ADDRS the URL gives only user, password and TLS (redis://user:pass@host or rediss://...)", u.DB)
	}
	return nil
}

// openRedisCluster connects to the Redis Cluster whose seed nodes are
// DASHCACHE_REDIS_CLUSTER_ADDRS. If DASHCACHE_REDIS_URL is set too, it gives
// only the credentials and TLS (rediss://) for every node; its host is not
// used, and its database must be 0, the only one a cluster has.
//
// Retries: the node clients do not retry on their own (MaxRetries stays at the
// cluster default, none); the cluster client tries a command up to
// 1+MaxRedirects (default 3) times in all, following MOVED/ASK redirects and
// trying another node after a network error, so a slot that moved during a
// resharding or failover still answers.
func openRedisCluster(cfg Config, log zerolog.Logger) (redis.UniversalClient, func(), error) {
	opt := &redis.ClusterOptions{
		Addrs:         cfg.RedisClusterAddrs,
		DialTimeout:   redisIOTimeout,
		ReadTimeout:   redisIOTimeout,
		WriteTimeout:  redisIOTimeout,
		PoolTimeout:   redisPoolTimeout,
		DialerRetries: redisDials,
	}
	if cfg.RedisURL != "" {
		u, err := redis.ParseURL(cfg.RedisURL)
		if err == nil {
			err = clusterDB(u)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("DASHCACHE_REDIS_URL: %w", err)
		}
		opt.Username, opt.Password = u.Username, u.Password
		if u.TLSConfig != nil {
			opt.TLSConfig = u.TLSConfig.Clone()
			// Each node's certificate is checked against the name dialled,
			// not against the URL's host.
			opt.TLSConfig.ServerName = ""
		}
	}
	log.Info().Strs("redis_cluster_addrs", opt.Addrs).Bool("redis_tls", opt.TLSConfig != nil).
		Bool("redis_auth", opt.Password != "").Msg("using Redis Cluster") // never the password
	rdb := redis.NewClusterClient(opt)
	return rdb, func() { rdb.Close() }, nil
}
