package cli

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/redis/go-redis/v9"
)

// TestMovedPrimaryLoading: a client on an address that moves, whose pooled
// connections stay with the old primary, demoted, while it loads the new
// primary's data (answering LOADING for about 4 s): each such connection is
// closed at its first LOADING, so reads reach the new primary while the old
// one is still loading. (go-redis alone keeps them until the load ends.)
func TestMovedPrimaryLoading(t *testing.T) {
	old := redistest.Server(t)
	next := redistest.Replica(t, old)
	slowLoad(t, old, next)
	proxy := redistest.NewProxy(t, old.Addr)
	rdb := newClient(&redis.Options{Addr: proxy.Addr})
	defer rdb.Close()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 4 { // 4 connections in the pool, to the old primary
		wg.Go(func() { rdb.Do(ctx, "BLPOP", "nothing", "0.1") })
	}
	wg.Wait()
	// An answer that only the new primary has while the old one loads.
	nextClient := redis.NewClient(&redis.Options{Addr: next.Addr})
	defer nextClient.Close()
	oldClient := redis.NewClient(&redis.Options{Addr: old.Addr})
	defer oldClient.Close()

	next.ReplicaOf(nil)
	proxy.MoveTo(next.Addr)
	if err := nextClient.Set(ctx, "primary", "next", 0).Err(); err != nil {
		t.Fatal(err)
	}
	splitWrite(t, old)
	old.ReplicaOf(next)
	loading := func() bool {
		info, err := oldClient.Info(ctx, "persistence").Result()
		return err == nil && strings.Contains(info, "loading:1")
	}
	wait.For(t, "the old primary to load the new one's data", 10*time.Second, loading)
	began := time.Now()
	var reads, refused int
	wait.For(t, "a read from the new primary", 5*time.Second, func() bool {
		reads++
		v, err := rdb.Get(ctx, "primary").Result()
		if err != nil {
			refused++
		}
		return v == "next"
	})
	took := time.Since(began)
	if !loading() {
		t.Errorf("the old primary ended its load before a read reached the new one (%s, %d reads refused): the connections were not moved", took, refused)
	}
	t.Logf("a read reached the new primary %s after the old one began loading; %d of %d reads refused", took.Round(time.Millisecond), refused, reads)
}
