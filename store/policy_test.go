package store_test

import (
	"context"
	"go.opentelemetry.io/otel/trace"
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
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
		unchecked, err := store.CheckEviction(ctx, rdb)
		if ok != (err == nil) || len(unchecked) != 0 {
			t.Errorf("%s: %v (unchecked %v)", policy, err, unchecked)
		}
		if err != nil && (!strings.Contains(err.Error(), "maxmemory-policy noeviction") || !strings.Contains(err.Error(), policy)) {
			t.Errorf("%s: the message does not say what is set and what to set: %v", policy, err)
		}
	}
	unchecked, err := store.CheckEviction(ctx, miniClient(t))
	if err != nil || len(unchecked) != 1 {
		t.Errorf("miniredis: unchecked %v, %v; want it unchecked", unchecked, err)
	}
}

// TestSubscriptionSurvivesRestart: after Redis is killed and started again,
// the subscription comes back by itself and delivers the next fill.
func TestSubscriptionSurvivesRestart(t *testing.T) {
	srv := redistest.Server(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	st := store.New(rdb)
	ctx := context.Background()
	got := make(chan string, 10)
	sub, err := st.Cache.Subscribe(ctx, store.Listener{Filled: func(k string, _ trace.SpanContext) { got <- k }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	go sub.Run(ctx)

	srv.Kill()
	srv.Start()
	k := mustKey(t, "acme", "2025-01-01", "2025-01-31")
	// Fill until the notification arrives: the subscription may take a
	// moment to come back, and a fill before that is not delivered.
	wait.For(t, "a fill's notification after the restart (the subscription to come back)", 15*time.Second, func() bool {
		if l, err := st.Cache.Obtain(ctx, k, time.Minute); err == nil {
			l.Fill(ctx, store.NewEntry(k, []byte(`{}`), time.Now(), time.Second, time.Hour), time.Hour)
			l.Release(ctx)
		}
		select {
		case c := <-got:
			if c != k.String() {
				t.Fatalf("notified of %q", c)
			}
			return true
		case <-time.After(200 * time.Millisecond):
			return false
		}
	})
}
