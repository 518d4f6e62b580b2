package guard_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// A worker makes each BI call through the guard: the call goes out once
// the fleet's rate, the customer's share and its budget let it, and the
// outcome is told to the back end's breaker. Here the customer's daily
// budget is one call.
func ExampleGuard_Call() {
	m, _ := miniredis.Run()
	defer m.Close()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	noon := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	g, err := guard.New(guard.Config{State: store.New(rdb).Guards, DailyCalls: 1, Now: func() time.Time { return noon }})
	if err != nil {
		fmt.Println(err)
		return
	}
	k, _ := dashcache.ParseCanonical("acme|2025-01-01|2025-01-31")
	query := func(context.Context) ([]byte, error) { return []byte(`{"revenue":42}`), nil } // the BI client's call

	for range 2 {
		body, err := g.Call(context.Background(), k, false, query)
		var refusal *dashcache.Refusal
		switch {
		case errors.As(err, &refusal):
			fmt.Println("refused:", refusal.Reason, "for", refusal.RetryAfter)
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Println("answered:", string(body))
		}
	}
	// Output:
	// answered: {"revenue":42}
	// refused: budget for 12h0m0s
}
