package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// openRedis connects to DASHCACHE_REDIS_URL or, where allowed, starts an
// embedded in-process Redis. Every call has a timeout, so an unreachable Redis
// shows as an error within seconds.
func openRedis(cfg Config, log zerolog.Logger, embeddedOK bool) (redis.UniversalClient, func(), error) {
	var opt *redis.Options
	closeAll := func() {}
	if cfg.RedisURL == "" {
		if !embeddedOK {
			return nil, nil, errors.New("DASHCACHE_REDIS_URL is required for this role (only role all may run on the embedded Redis)")
		}
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
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.PoolTimeout = 3 * time.Second
	opt.MaxRetries = 1
	rdb := redis.NewClient(opt)
	return rdb, func() { rdb.Close(); closeAll() }, nil
}
