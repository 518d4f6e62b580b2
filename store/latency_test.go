package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/dashcache/dashcache/store"
)

// TestLatency: the latest report of a back end's latency is read back, each
// back end's apart; none reads as zero calls.
func TestLatency(t *testing.T) {
	ctx := context.Background()
	st, _ := clocked(t)
	if l, err := st.Guards.Latency(ctx, "warehouse"); err != nil || l.Calls != 0 {
		t.Fatalf("before any report: %+v, %v", l, err)
	}
	at := time.UnixMilli(time.Now().UnixMilli())
	want := store.Latency{P50: 180 * time.Millisecond, P99: 420 * time.Millisecond, Calls: 50, At: at}
	if err := st.Guards.ReportLatency(ctx, "warehouse", want); err != nil {
		t.Fatal(err)
	}
	if l, err := st.Guards.Latency(ctx, "warehouse"); err != nil || l != want {
		t.Errorf("Latency = %+v, %v; want %+v", l, err, want)
	}
	if l, _ := st.Guards.Latency(ctx, ""); l.Calls != 0 {
		t.Errorf("the default back end has %+v, reported for another", l)
	}
}
