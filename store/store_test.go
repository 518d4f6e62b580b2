package store_test

import (
	"context"
	"errors"
	"go.opentelemetry.io/otel/trace"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var today = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func mustKey(t *testing.T, customer, from, to string) dashcache.ReportKey {
	t.Helper()
	k, err := dashcache.ParseReportKey(customer, from, to, today)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func miniClient(t *testing.T) *redis.Client {
	m := miniredis.RunT(t)
	m.ClockTTL(true) // TTLs run down in real time, as in Redis
	c := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestKeysShareHashTag(t *testing.T) {
	k := mustKey(t, "acme", "2025-01-01", "2025-01-31")
	want := map[string]string{
		store.EntryKey(k):   "dashcache:{acme|2025-01-01|2025-01-31}:report",
		store.LockKey(k):    "dashcache:{acme|2025-01-01|2025-01-31}:lock",
		store.FailureKey(k): "dashcache:{acme|2025-01-01|2025-01-31}:failure",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("key %q, want %q", got, w)
		}
	}
}

func TestEntryRoundTrip(t *testing.T) {
	k := mustKey(t, "acme", "2025-01-01", "2025-01-31")
	now := time.UnixMilli(1740000000123).UTC()
	raw := store.NewEntry(k, []byte(`{"revenue":12}`), now, 2*time.Second, time.Hour)
	e, err := store.ParseEntry(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	wantBody := `{"customer":"acme","from":"2025-01-01","to":"2025-01-31","computed_at":"2025-02-19T21:20:00Z","data":{"revenue":12}}`
	if e.Body != wantBody {
		t.Errorf("body\n got %s\nwant %s", e.Body, wantBody)
	}
	if !e.ComputedAt.Equal(now) || !e.FreshUntil.Equal(now.Add(time.Hour)) || e.ComputeTime != 2*time.Second {
		t.Errorf("times %v %v %v", e.ComputedAt, e.FreshUntil, e.ComputeTime)
	}
	if !e.Fresh(now.Add(time.Hour-time.Millisecond)) || e.Fresh(now.Add(time.Hour)) {
		t.Error("Fresh disagrees with FreshUntil")
	}
	if len(e.ETag) < 10 || e.ETag[0] != '"' || e.ETag[len(e.ETag)-1] != '"' {
		t.Errorf("etag %q is not a quoted tag", e.ETag)
	}
	other, _ := store.ParseEntry(string(store.NewEntry(k, []byte(`{"revenue":13}`), now, 2*time.Second, time.Hour)))
	if other.ETag == e.ETag {
		t.Error("different bodies share an ETag")
	}
	truncated := string(raw[:len(raw)-1])
	for _, bad := range []string{"", "x", "dc3 1 2 3\n{}", "dc3 a b c 2 \"e\"\n{}", "dc2 1 2 3 \"e\"\n{}", "dc3 1 2 3 3 \"e\"\n{}", truncated} {
		if _, err := store.ParseEntry(bad); err == nil {
			t.Errorf("ParseEntry(%q) accepted a malformed entry", bad)
		}
	}
}

// TestLockSafety: a holder whose lock expired and was taken over can neither
// release the new holder's lock, nor renew it, nor overwrite its report.
func TestLockSafety(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	s := store.New(rdb)
	k := mustKey(t, "acme", "2025-01-01", "2025-01-31")

	old, err := s.Cache.Obtain(ctx, k, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cache.Obtain(ctx, k, time.Minute); !errors.Is(err, store.ErrLockContended) {
		t.Fatalf("second Obtain while held: %v, want ErrLockContended", err)
	}
	// Take over as soon as the old lock expires (bounded).
	var cur *store.Lock
	if !wait.Until(5*time.Second, func() bool {
		cur, err = s.Cache.Obtain(ctx, k, time.Minute)
		if err != nil && !errors.Is(err, store.ErrLockContended) {
			t.Fatalf("taking over the expired lock: %v", err)
		}
		return cur != nil
	}) {
		t.Fatalf("taking over the expired lock: %v", err)
	}
	curToken, _ := rdb.Get(ctx, store.LockKey(k)).Result()

	if err := old.Release(ctx); !errors.Is(err, store.ErrLockNotHeld) {
		t.Errorf("old holder's Release: %v, want ErrLockNotHeld", err)
	}
	if err := old.Renew(ctx); !errors.Is(err, store.ErrLockNotHeld) {
		t.Errorf("old holder's Renew: %v, want ErrLockNotHeld", err)
	}
	if tok, _ := rdb.Get(ctx, store.LockKey(k)).Result(); tok != curToken {
		t.Fatalf("the new holder's lock was touched: token %q, want %q", tok, curToken)
	}

	newer := store.NewEntry(k, []byte(`{"v":"new"}`), time.Now(), 2*time.Second, time.Hour)
	late := store.NewEntry(k, []byte(`{"v":"late"}`), time.Now(), 2*time.Second, time.Hour)
	if err := old.Fill(ctx, late, time.Hour); !errors.Is(err, store.ErrLockNotHeld) {
		t.Errorf("old holder's Fill before the new one's: %v, want ErrLockNotHeld", err)
	}
	if got, _ := s.Cache.Get(ctx, k); got != "" {
		t.Fatalf("refused fill still wrote the report: %q", got)
	}
	if err := cur.Fill(ctx, newer, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := old.Fill(ctx, late, time.Hour); !errors.Is(err, store.ErrLockNotHeld) {
		t.Errorf("old holder's late Fill: %v, want ErrLockNotHeld", err)
	}
	if err := old.RememberFailure(ctx, "late failure", time.Hour); !errors.Is(err, store.ErrLockNotHeld) {
		t.Errorf("old holder's RememberFailure: %v, want ErrLockNotHeld", err)
	}
	found, err := s.Cache.Lookup(ctx, k)
	if err != nil || found[0].Entry != string(newer) || found[0].Failure != "" {
		t.Fatalf("after the late writes: %+v, err %v; want the new holder's report only", found, err)
	}
	if err := cur.Release(ctx); err != nil {
		t.Errorf("new holder's Release: %v", err)
	}
	if n, _ := rdb.Exists(ctx, store.LockKey(k)).Result(); n != 0 {
		t.Error("lock still present after its owner released it")
	}
}

// TestHoldCancelsWhenLockLost: renewal that finds the lock taken over cancels
// the work's context with ErrLockNotHeld.
func TestHoldCancelsWhenLockLost(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Client(t)
	s := store.New(rdb)
	k := mustKey(t, "acme", "2025-02-01", "2025-02-02")

	l, err := s.Cache.Obtain(ctx, k, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	held, stop := l.Hold(ctx)
	defer stop()
	rdb.Set(ctx, store.LockKey(k), "someone-else", time.Minute)
	select {
	case <-held.Done():
		if !errors.Is(context.Cause(held), store.ErrLockNotHeld) {
			t.Errorf("cause %v, want ErrLockNotHeld", context.Cause(held))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("lost lock did not cancel the held context")
	}
}

// TestHoldKeepsLockAlive: a held lock outlives its TTL while Hold runs.
func TestHoldKeepsLockAlive(t *testing.T) {
	ctx := context.Background()
	rdb := miniClient(t)
	s := store.New(rdb)
	k := mustKey(t, "acme", "2025-02-01", "2025-02-03")
	l, err := s.Cache.Obtain(ctx, k, 600*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	held, stop := l.Hold(ctx)
	// Watch the TTL being pushed back up at least three times, i.e. past the
	// original TTL of 600 ms, without the held context ending.
	var raises int
	last := time.Duration(1 << 62)
	wait.Until(5*time.Second, func() bool {
		ttl := rdb.PTTL(ctx, store.LockKey(k)).Val()
		if ttl > last {
			raises++
		}
		last = ttl
		if held.Err() != nil {
			t.Fatalf("held context ended: %v", context.Cause(held))
		}
		return raises >= 3
	})
	stop()
	if raises < 3 {
		t.Fatalf("lock TTL was renewed %d times, want 3", raises)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release after hold: %v", err)
	}
}

func TestFillNotifiesSubscribers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb := miniClient(t)
	s := store.New(rdb)
	k := mustKey(t, "globex", "2025-01-01", "2025-01-01")

	got := make(chan string, 2)
	sub, err := s.Cache.Subscribe(ctx, store.Listener{Filled: func(c string, _ trace.SpanContext) { got <- c }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	go sub.Run(ctx)

	l, err := s.Cache.Obtain(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.RememberFailure(ctx, "BI said no", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Fill(ctx, store.NewEntry(k, []byte(`1`), time.Now(), 2*time.Second, time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case c := <-got:
			if c != k.String() {
				t.Errorf("notification %q, want %q", c, k.String())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("notification %d never arrived", i+1)
		}
	}
	found, err := s.Cache.Lookup(ctx, k)
	if err != nil || found[0].Entry == "" || found[0].Failure != "" {
		t.Errorf("after fill: %+v, err %v; a fill must clear the failure", found, err)
	}
}
