package store_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// A worker fills a report under its lock: Obtain takes the lock (or reports
// that another worker is filling the report), Hold renews it while the slow
// BI call runs, and Fill writes the report only while the lock is still the
// caller's, waking the readers subscribed to fill notifications.
func ExampleCache_Obtain() {
	m, _ := miniredis.Run()
	defer m.Close()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	st := store.New(rdb)
	ctx := context.Background()
	k, _ := dashcache.ParseCanonical("acme|2025-01-01|2025-01-31")

	lock, err := st.Cache.Obtain(ctx, k, 15*time.Second)
	if err != nil {
		fmt.Println(err) // store.ErrLockContended: someone else fills it
		return
	}
	defer lock.Release(ctx)

	// held is cancelled, with cause store.ErrLockNotHeld, if the lock is
	// lost; the BI call runs under it.
	held, stop := lock.Hold(ctx)
	defer stop()
	data := []byte(`{"revenue":42}`) // what the BI platform answered
	computedAt := time.Date(2025, 2, 1, 9, 30, 0, 0, time.UTC)
	entry := store.NewEntry(k, data, computedAt, 3*time.Second, dashcache.ClosedTTL)
	if err := lock.Fill(held, entry, dashcache.ClosedTTL+dashcache.StaleFor); err != nil {
		fmt.Println(err) // store.ErrLockNotHeld: nothing was written
		return
	}

	_, err = st.Cache.Obtain(ctx, k, 15*time.Second)
	fmt.Println("another worker:", err)
	cached, _ := st.Cache.Get(ctx, k)
	e, _ := store.ParseEntry(cached)
	fmt.Println(e.Body)
	// Output:
	// another worker: store: lock held by another owner
	// {"customer":"acme","from":"2025-01-01","to":"2025-01-31","computed_at":"2025-02-01T09:30:00Z","data":{"revenue":42}}
}
