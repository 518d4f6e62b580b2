package cli

import (
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// Every Redis call has these bounds, so an unreachable Redis shows as an error
// within seconds.
const (
	redisIOTimeout   = 2 * time.Second // dial, read, write
	redisPoolTimeout = 3 * time.Second // waiting for a free connection
)

// openRedis connects to the Redis Cluster of DASHCACHE_REDIS_CLUSTER_ADDRS, to
// DASHCACHE_REDIS_URL or, with neither (which LoadConfig allows only for a
// role that may run on it), starts an embedded in-process Redis.
func openRedis(cfg Config, log zerolog.Logger) (redis.UniversalClient, func(), error) {
	if len(cfg.RedisClusterAddrs) > 0 {
		return openRedisCluster(cfg, log)
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
	opt.DialTimeout = redisIOTimeout
	opt.ReadTimeout = redisIOTimeout
	opt.WriteTimeout = redisIOTimeout
	opt.PoolTimeout = redisPoolTimeout
	opt.MaxRetries = 1
	rdb := redis.NewClient(opt)
	return rdb, func() { rdb.Close(); closeAll() }, nil
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
		Addrs:        cfg.RedisClusterAddrs,
		DialTimeout:  redisIOTimeout,
		ReadTimeout:  redisIOTimeout,
		WriteTimeout: redisIOTimeout,
		PoolTimeout:  redisPoolTimeout,
	}
	if cfg.RedisURL != "" {
		u, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, fmt.Errorf("DASHCACHE_REDIS_URL: %w", err)
		}
		if u.DB != 0 {
			return nil, nil, fmt.Errorf("DASHCACHE_REDIS_URL: database %d: a Redis Cluster has only database 0; "+
				"with DASHCACHE_REDIS_CLUSTER_ADDRS the URL gives only user, password and TLS (redis://user:pass@host or rediss://...)", u.DB)
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
