package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// TestCheckEviction: a queue Redis that may evict is refused, with a message
// that says what to set; noeviction passes; a Redis without CONFIG (here
// miniredis) is reported unchecked.
func TestCheckEviction(t *testing.T) {
	srv := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	ctx := context.Background()
	for policy, ok := range map[string]bool{"noeviction": true, "allkeys-lru": false, "volatile-ttl": false} {
		rdb.ConfigSet(ctx, "maxmemory-policy", policy)
		unchecked, err := store.New(rdb).CheckEviction(ctx)
		if ok != (err == nil) || len(unchecked) != 0 {
			t.Errorf("%s: %v (unchecked %v)", policy, err, unchecked)
		}
		if err != nil && (!strings.Contains(err.Error(), "maxmemory-policy noeviction") || !strings.Contains(err.Error(), policy)) {
			t.Errorf("%s: the message does not say what is set and what to set: %v", policy, err)
		}
	}
	unchecked, err := store.New(miniClient(t)).CheckEviction(ctx)
	if err != nil || len(unchecked) != 1 {
		t.Errorf("miniredis: unchecked %v, %v; want it unchecked", unchecked, err)
	}
}
