package cli

import (
	"context"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/store"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
)

// TestSubscriptionFollowsSwitchover: in a planned Sentinel switchover the
// old primary keeps the subscriptions' connections, and is demoted (which
// closes them) only seconds after the clients moved: a subscription that
// hears nothing of what is published on the new primary says it is down
// and subscribes again there within about 2 s, so that no API process
// keeps serving from its memory reports filled again meanwhile. (Without
// its probes nothing was heard for more than 5 s.)
func TestSubscriptionFollowsSwitchover(t *testing.T) {
	primary := redistest.Server(t)
	replica := redistest.Replica(t, primary)
	sentinels := redistest.Sentinels(t, primary, 3, 1, "")
	rdb := openSentinel(Sentinel{Addrs: sentinels.Addrs, Master: redistest.SentinelMaster}, "redis", zerolog.Nop())
	defer rdb.Close()
	filled := make(chan string, 10)
	ups := make(chan bool, 10)
	sub, err := store.New(rdb).Cache.Subscribe(t.Context(), store.Listener{
		Filled: func(k string, _ trace.SpanContext) { filled <- k },
		Up:     func(up bool) { ups <- up },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { sub.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	switched := sentinels.Switched(t)
	sentinels.Failover(t)
	var at time.Time
	select {
	case at = <-switched:
	case <-time.After(30 * time.Second):
		t.Fatal("no +switch-master within 30 s")
	}
	if p := sentinels.Primary(); p != replica.Addr {
		t.Fatalf("switched to %s, want %s", p, replica.Addr)
	}
	// Announced on the new primary, as a worker's fill is.
	announce := func(k string) {
		if err := rdb.Publish(t.Context(), store.FillChannel, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	announce("first")
	deadline := time.After(5 * time.Second)
	var wentDown time.Duration
	for {
		select {
		case up := <-ups:
			if !up && wentDown == 0 {
				wentDown = time.Since(at)
			}
			continue
		case k := <-filled:
			if k == "first" || k == "again" {
				t.Logf("the subscription said it was down %s after +switch-master, and heard the new primary %s after it (%q)",
					wentDown.Round(time.Millisecond), time.Since(at).Round(time.Millisecond), k)
				return
			}
		case <-time.After(100 * time.Millisecond):
			announce("again")
			continue
		case <-deadline:
			t.Fatalf("nothing published on the new primary was heard within 5 s of +switch-master (old primary's role: %s)", primary.Role())
		}
	}
}
