package store

import (
	"context"
	"fmt"
	"sync"

	"github.com/redis/go-redis/v9"
)

// CheckEviction checks that the queue's Redis cannot evict what dashcache
// keeps there: its maxmemory-policy (each master's, on a cluster) must be
// noeviction, as any other lets Redis drop asynq's tasks, the fleet's guards
// and the index of cached reports under memory pressure. A Redis that refuses CONFIG
// GET (some managed services do) cannot be checked: its address is in
// unchecked.
func CheckEviction(ctx context.Context, queue redis.UniversalClient) (unchecked []string, err error) {
	var mu sync.Mutex
	var bad []string
	check := func(ctx context.Context, c *redis.Client) error {
		addr := c.Options().Addr
		policy, cerr := c.ConfigGet(ctx, "maxmemory-policy").Result()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case cerr != nil:
			unchecked = append(unchecked, addr)
		case policy["maxmemory-policy"] != "noeviction":
			bad = append(bad, fmt.Sprintf("%s has maxmemory-policy %s", addr, policy["maxmemory-policy"]))
		}
		return nil
	}
	switch rdb := queue.(type) {
	case *redis.ClusterClient:
		err = rdb.ForEachMaster(ctx, check)
	case *redis.Client:
		err = check(ctx, rdb)
	}
	if err != nil {
		return nil, fmt.Errorf("reading maxmemory-policy: %w", err)
	}
	if len(bad) > 0 {
		return unchecked, fmt.Errorf("the queue's Redis may evict asynq's tasks and the fleet's guards under memory pressure "+
			"(%v): set maxmemory-policy noeviction there (CONFIG SET maxmemory-policy noeviction, and in redis.conf), "+
			"and give the reports a Redis of their own that may evict, with DASHCACHE_CACHE_REDIS_URL", bad)
	}
	return unchecked, nil
}
