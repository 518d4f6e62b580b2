package store_test

import (
	"context"
	"go.opentelemetry.io/otel/trace"
	"slices"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// onBoth runs test on miniredis and on a real Redis.
func onBoth(t *testing.T, test func(t *testing.T, rdb *redis.Client)) {
	t.Run("miniredis", func(t *testing.T) { test(t, miniClient(t)) })
	t.Run("redis", func(t *testing.T) { test(t, redistest.Client(t)) })
}

// fillFor writes a report's entry, fresh for fresh from now, and indexes it.
func fillFor(t *testing.T, s store.Store, k dashcache.ReportKey, now time.Time, fresh time.Duration) {
	t.Helper()
	ctx := context.Background()
	l, err := s.Cache.Obtain(ctx, k, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Fill(ctx, store.NewEntry(k, []byte(`{"n":1}`), now, time.Second, fresh), fresh+dashcache.StaleFor); err != nil {
		t.Fatal(err)
	}
	if err := s.Index.IndexFill(ctx, k, now, now.Add(fresh+dashcache.StaleFor)); err != nil {
		t.Fatal(err)
	}
}

// TestIndex: the index lists a customer's reports until their entries
// expire, and is pruned of the expired ones by the next fill.
func TestIndex(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb *redis.Client) {
		s, ctx := store.New(rdb), context.Background()
		now := time.Now()
		jan, feb := mustKey(t, "acme", "2025-01-01", "2025-01-31"), mustKey(t, "acme", "2025-02-01", "2025-02-28")
		fillFor(t, s, jan, now, time.Hour)
		if err := s.Index.IndexFill(ctx, feb, now, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		fillFor(t, s, mustKey(t, "globex", "2025-01-01", "2025-01-31"), now, time.Hour)

		got, err := s.Index.Cached(ctx, "acme", now)
		if err != nil || !slices.Equal(got, []dashcache.ReportKey{feb, jan}) {
			t.Fatalf("Cached(acme) = %v, %v; want feb (expiring first), jan", got, err)
		}
		later := now.Add(2 * time.Minute) // feb's entry has expired
		if got, _ := s.Index.Cached(ctx, "acme", later); !slices.Equal(got, []dashcache.ReportKey{jan}) {
			t.Errorf("Cached(acme) after feb expired = %v, want jan", got)
		}
		fillFor(t, s, mustKey(t, "acme", "2025-03-01", "2025-03-01"), later, time.Hour)
		if n, _ := rdb.ZCard(ctx, "dashcache:{c:acme}:reports").Result(); n != 2 {
			t.Errorf("the index holds %d reports after a fill, want 2: the expired one pruned", n)
		}
		cs, err := s.Index.IndexedCustomers(ctx)
		slices.Sort(cs)
		if err != nil || !slices.Equal(cs, []string{"acme", "globex"}) {
			t.Errorf("IndexedCustomers = %v, %v", cs, err)
		}
		if got, err := s.Index.Cached(ctx, "nobody", now); err != nil || len(got) != 0 {
			t.Errorf("Cached(nobody) = %v, %v", got, err)
		}
	})
}

// TestKnown: for many customers at once, the index tells until when each
// cached report is fresh, and which reports each customer read lately.
func TestKnown(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb *redis.Client) {
		s, ctx := store.New(rdb), context.Background()
		now := time.UnixMilli(time.Now().UnixMilli())
		jan, feb := mustKey(t, "acme", "2025-01-01", "2025-01-31"), mustKey(t, "acme", "2025-02-01", "2025-02-28")
		revenue := mustKey(t, "globex", "2025-01-01", "2025-01-31")
		revenue.Report = "revenue"
		fillFor(t, s, jan, now, dashcache.ClosedTTL)
		fillFor(t, s, feb, now.Add(-time.Hour), 5*time.Minute) // stale, still held
		fillFor(t, s, revenue, now, time.Hour)
		if err := s.Index.RecordReads(ctx, map[dashcache.ReportKey]time.Time{jan: now.Add(-2 * time.Hour), feb: now.Add(-30 * time.Hour)}); err != nil {
			t.Fatal(err)
		}

		k, err := s.Index.Known(ctx, []string{"acme", "globex", "nobody"}, now, now.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		want := map[dashcache.ReportKey]time.Time{jan: now.Add(dashcache.ClosedTTL), feb: now.Add(-55 * time.Minute), revenue: now.Add(time.Hour)}
		if len(k.FreshUntil) != len(want) {
			t.Errorf("FreshUntil = %v, want %v", k.FreshUntil, want)
		}
		for key, until := range want {
			if !k.FreshUntil[key].Equal(until) {
				t.Errorf("FreshUntil[%s] = %s, want %s", key, k.FreshUntil[key], until)
			}
		}
		if got := k.Read["acme"]; !slices.Equal(got, []dashcache.ReportKey{jan}) {
			t.Errorf("Read[acme] = %v, want jan (feb was read 30 h ago)", got)
		}
		if len(k.Read["globex"]) != 0 || len(k.Read["nobody"]) != 0 {
			t.Errorf("Read = %v, want acme's alone", k.Read)
		}
		if k, err := s.Index.Known(ctx, []string{"acme"}, now, time.Time{}); err != nil || len(k.Read) != 0 || len(k.FreshUntil) != 2 {
			t.Errorf("without readSince: %+v, %v; want the 2 reports held and no reads", k, err)
		}
	})
}

// TestMarkStale: marking keeps an entry's bytes and TTL, makes it stale at
// once, tells the subscribers, and marks only what is fresh.
func TestMarkStale(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb *redis.Client) {
		s, ctx := store.New(rdb), context.Background()
		now := time.Now()
		fresh, stale, absent := mustKey(t, "acme", "2025-01-01", "2025-01-31"), mustKey(t, "acme", "2025-02-01", "2025-02-28"), mustKey(t, "acme", "2024-03-01", "2024-03-31")
		fillFor(t, s, fresh, now, time.Hour)
		fillFor(t, s, stale, now.Add(-2*time.Hour), time.Hour)
		before, _ := s.Cache.Get(ctx, fresh)
		ttl, _ := rdb.PTTL(ctx, store.EntryKey(fresh)).Result()

		told := make(chan string, 3)
		sub, err := s.Cache.Subscribe(ctx, store.Listener{Filled: func(c string, _ trace.SpanContext) { told <- c }})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		go sub.Run(ctx)

		marked, err := s.Cache.MarkStale(ctx, []dashcache.ReportKey{fresh, stale, absent}, now)
		if err != nil || !slices.Equal(marked, []dashcache.ReportKey{fresh}) {
			t.Fatalf("MarkStale = %v, %v; want only the fresh one", marked, err)
		}
		raw, _ := s.Cache.Get(ctx, fresh)
		e, err := store.ParseEntry(raw)
		if err != nil || e.Fresh(now) || !e.FreshUntil.Equal(now.Truncate(time.Millisecond)) {
			t.Fatalf("after marking: %+v, %v; want fresh until now", e, err)
		}
		old, _ := store.ParseEntry(before)
		if e.Body != old.Body || !e.ComputedAt.Equal(old.ComputedAt) {
			t.Errorf("marking changed the report: %+v, was %+v", e, old)
		}
		if after, _ := rdb.PTTL(ctx, store.EntryKey(fresh)).Result(); after <= 0 || after > ttl || after > dashcache.StaleFor {
			t.Errorf("TTL %s after marking, was %s: marking must not raise it, and keep a stale report at most %s", after, ttl, dashcache.StaleFor)
		}
		// (Other tests' fills on the same Redis server may be told too:
		// pub/sub spans its databases.)
		for c := ""; c != fresh.String(); {
			select {
			case c = <-told:
			case <-time.After(5 * time.Second):
				t.Fatal("the subscribers were not told")
			}
		}
		if again, _ := s.Cache.MarkStale(ctx, []dashcache.ReportKey{fresh}, now); len(again) != 0 {
			t.Errorf("marking a stale report again marked %v", again)
		}
	})
}

// TestReads: reads are recorded per customer, the latest of each report
// kept, and the customer's reads bounded.
func TestReads(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb *redis.Client) {
		s, ctx := store.New(rdb), context.Background()
		now := time.Now()
		jan, feb := mustKey(t, "acme", "2025-01-01", "2025-01-31"), mustKey(t, "acme", "2025-02-01", "2025-02-28")
		other := mustKey(t, "globex", "2025-01-01", "2025-01-31")
		err := s.Index.RecordReads(ctx, map[dashcache.ReportKey]time.Time{jan: now, feb: now.Add(-2 * time.Hour), other: now})
		if err != nil {
			t.Fatal(err)
		}
		// A batch from a process that saw jan earlier does not move it back.
		if err := s.Index.RecordReads(ctx, map[dashcache.ReportKey]time.Time{jan: now.Add(-3 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Index.ReadSince(ctx, "acme", now.Add(-time.Hour))
		if err != nil || !slices.Equal(got, []dashcache.ReportKey{jan}) {
			t.Fatalf("ReadSince(acme, an hour ago) = %v, %v; want jan", got, err)
		}
		if got, _ := s.Index.ReadSince(ctx, "acme", now.Add(-3*time.Hour)); !slices.Equal(got, []dashcache.ReportKey{feb, jan}) {
			t.Errorf("ReadSince(acme, 3 hours ago) = %v, want feb, jan", got)
		}
		if err := s.Index.RecordReads(ctx, nil); err != nil {
			t.Errorf("RecordReads(nil) = %v", err)
		}

		many := make(map[dashcache.ReportKey]time.Time, store.MaxReadsKept+5)
		start := dashcache.CivilDay(2000, 1, 1)
		for i := range store.MaxReadsKept + 5 {
			many[dashcache.ReportKey{Customer: "wide", From: start, To: start + dashcache.Day(i)}] = now.Add(time.Duration(i) * time.Millisecond)
		}
		if err := s.Index.RecordReads(ctx, many); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Index.ReadSince(ctx, "wide", time.Time{})
		if len(got) != store.MaxReadsKept || got[0].To != start+5 {
			t.Errorf("a customer's reads: %d kept, the oldest %v; want the latest %d", len(got), got[0], store.MaxReadsKept)
		}
	})
}

// TestChanges: a fill that began before a change of data it covers is told
// so; one that began after, or covers other days or another customer, is
// not; a change of every customer counts for each.
func TestChanges(t *testing.T) {
	onBoth(t, func(t *testing.T, rdb *redis.Client) {
		s, ctx := store.New(rdb), context.Background()
		at := time.Now()
		jan := mustKey(t, "acme", "2025-01-01", "2025-01-31")
		day := func(d string) dashcache.Day { return mustKey(t, "x", d, d).From }
		if err := s.Index.RecordChange(ctx, dashcache.Changed{Customers: []string{"acme"}, From: day("2025-01-31"), To: day("2025-02-02")}, at); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			k     dashcache.ReportKey
			since time.Time
			want  bool
		}{
			{jan, at.Add(-time.Second), true},
			{jan, at, true},
			{jan, at.Add(time.Millisecond), false},
			{mustKey(t, "acme", "2024-12-01", "2024-12-31"), at.Add(-time.Second), false},
			{mustKey(t, "globex", "2025-01-01", "2025-01-31"), at.Add(-time.Second), false},
		} {
			if got, err := s.Index.ChangedSince(ctx, c.k, c.since); err != nil || got != c.want {
				t.Errorf("ChangedSince(%s, %s) = %v, %v; want %v", c.k, c.since.Sub(at), got, err, c.want)
			}
		}
		if err := s.Index.RecordChange(ctx, dashcache.Changed{From: day("2025-01-15"), To: day("2025-01-15")}, at); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Index.ChangedSince(ctx, mustKey(t, "globex", "2025-01-01", "2025-01-31"), at); !got {
			t.Error("a change of every customer did not count for globex")
		}

		// A change of named reports counts for those alone; one of every
		// report (above) for named ones too.
		named := func(report string, k dashcache.ReportKey) dashcache.ReportKey { k.Report = report; return k }
		initech := mustKey(t, "initech", "2025-02-01", "2025-02-28")
		if err := s.Index.RecordChange(ctx, dashcache.Changed{Customers: []string{"initech"}, Reports: []string{"revenue", "orders"},
			From: day("2025-02-10"), To: day("2025-02-10")}, at); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			k    dashcache.ReportKey
			want bool
		}{
			{named("revenue", initech), true}, {named("orders", initech), true},
			{named("funnel", initech), false}, {initech, false},
			{named("funnel", jan), true},
		} {
			if got, err := s.Index.ChangedSince(ctx, c.k, at); err != nil || got != c.want {
				t.Errorf("ChangedSince(%s) = %v, %v; want %v", c.k, got, err, c.want)
			}
		}
	})
}
