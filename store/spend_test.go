package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
	"github.com/redis/go-redis/v9"
)

// clocked returns a Store on a miniredis whose clock (TIME, and TTLs through
// advance) the test moves.
func clocked(t *testing.T) (st store.Store, advance func(time.Duration)) {
	m := miniredis.RunT(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	m.SetTime(now)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return store.New(rdb), func(d time.Duration) {
		now = now.Add(d)
		m.SetTime(now)
		m.FastForward(d)
	}
}

func TestShare(t *testing.T) {
	ctx := context.Background()
	st, advance := clocked(t)
	var slots []*store.ShareSlot
	for range 2 {
		sl, err := st.Guards.TakeShare(ctx, "acme", 2, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, sl)
	}
	if _, err := st.Guards.TakeShare(ctx, "acme", 2, time.Minute); !errors.Is(err, store.ErrShareInUse) {
		t.Fatalf("third slot of a share of 2: %v, want ErrShareInUse", err)
	}
	if free, err := st.Guards.ShareFree(ctx, "acme", 2); free || err != nil {
		t.Errorf("ShareFree with the share in use: %v %v", free, err)
	}
	if free, _ := st.Guards.ShareFree(ctx, "globex", 2); !free {
		t.Error("another customer's share is not free")
	}
	if err := slots[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Guards.TakeShare(ctx, "acme", 2, time.Minute); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	// A holder that died frees its slot when its lifetime ends.
	advance(time.Minute + time.Second)
	if free, _ := st.Guards.ShareFree(ctx, "acme", 2); !free {
		t.Error("slots whose lifetime ended still count")
	}
}

func TestDeferredTasksInOrder(t *testing.T) {
	ctx := context.Background()
	st, _ := clocked(t)
	for _, task := range []string{"a", "b"} {
		if err := st.Guards.DeferTask(ctx, "acme", task); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // scored by the wall clock, in ms
	}
	for _, want := range []string{"a", "b", ""} {
		if got, err := st.Guards.NextDeferred(ctx, "acme"); got != want || err != nil {
			t.Errorf("NextDeferred = %q %v, want %q", got, err, want)
		}
	}
}

func TestAdmit(t *testing.T) {
	ctx := context.Background()
	st, advance := clocked(t)
	k1, k2, k3 := mustKey(t, "acme", "2025-01-01", "2025-01-01"), mustKey(t, "acme", "2025-01-02", "2025-01-02"), mustKey(t, "acme", "2025-01-03", "2025-01-03")
	for _, k := range []dashcache.ReportKey{k1, k2, k1} { // k1 again: already outstanding
		if ok, err := st.Guards.Admit(ctx, k, 2, time.Minute); !ok || err != nil {
			t.Fatalf("Admit(%s) = %v %v", k, ok, err)
		}
	}
	if ok, _ := st.Guards.Admit(ctx, k3, 2, time.Minute); ok {
		t.Fatal("a third report of a customer limited to 2 was admitted")
	}
	if ok, _ := st.Guards.Admit(ctx, mustKey(t, "globex", "2025-01-03", "2025-01-03"), 2, time.Minute); !ok {
		t.Error("another customer was refused")
	}
	if err := st.Guards.EndAdmitted(ctx, k1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Guards.Admit(ctx, k3, 2, time.Minute); !ok {
		t.Error("refused after a fill ended")
	}
	advance(time.Minute + time.Second) // fills whose task never ended stop counting
	for _, k := range []dashcache.ReportKey{k1, k2} {
		if ok, _ := st.Guards.Admit(ctx, k, 2, time.Minute); !ok {
			t.Errorf("Admit(%s) refused after the others' time ran out", k)
		}
	}
}

func TestSpendAndUsage(t *testing.T) {
	ctx := context.Background()
	st, _ := clocked(t)
	day := dashcache.CivilDay(2025, 3, 1)
	for i, want := range []bool{true, true, false} {
		if ok, err := st.Guards.Spend(ctx, day, "acme", "", 2); ok != want || err != nil {
			t.Errorf("call %d of a budget of 2: %v %v, want %v", i+1, ok, err, want)
		}
	}
	if ok, _ := st.Guards.Spend(ctx, day, "globex", "", 0); !ok {
		t.Error("a call without a budget was refused")
	}
	// Named reports share the customer's budget and are counted each.
	for _, report := range []string{"revenue", "revenue", "orders"} {
		if ok, _ := st.Guards.Spend(ctx, day, "initech", report, 3); !ok {
			t.Errorf("a call of %s within the budget was refused", report)
		}
	}
	if ok, _ := st.Guards.Spend(ctx, day, "initech", "", 3); ok {
		t.Error("the default report's call past the budget the named reports used up was let through")
	}
	if ok, _ := st.Guards.Spend(ctx, day+1, "acme", "", 2); !ok {
		t.Error("the budget did not reset the next day")
	}
	if err := st.Guards.CountRefusal(ctx, day, "acme", dashcache.ReasonPending); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Guards.Calls(ctx, day, "acme"); n != 2 || err != nil {
		t.Errorf("Calls = %d %v, want 2", n, err)
	}
	u, err := st.Guards.UsageOn(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if a, g, i := u["acme"], u["globex"], u["initech"]; len(u) != 3 || a.Calls != 2 || a.Refused[dashcache.ReasonBudget] != 1 ||
		a.Refused[dashcache.ReasonPending] != 1 || g.Calls != 1 || len(g.Refused) != 0 || a.Reports != nil ||
		i.Calls != 3 || len(i.Reports) != 2 || i.Reports["revenue"] != 2 || i.Reports["orders"] != 1 || i.Refused[dashcache.ReasonBudget] != 1 {
		t.Errorf("UsageOn = %+v", u)
	}
}

func TestBreaker(t *testing.T) {
	ctx := context.Background()
	rule := store.BreakerRule{Failures: 3, Customers: 2, Window: time.Minute, Cooldown: 30 * time.Second}
	record := func(st store.Store, customer string, failed bool) int {
		t.Helper()
		change, err := st.Guards.BreakerRecord(ctx, "", rule, customer, failed, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return change
	}
	allow := func(st store.Store) (bool, bool, time.Duration) {
		t.Helper()
		ok, probe, wait, err := st.Guards.BreakerAllow(ctx, "", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return ok, probe, wait
	}

	t.Run("one customer alone never opens it", func(t *testing.T) {
		st, _ := clocked(t)
		for range 10 {
			if record(st, "acme", true) != 0 {
				t.Fatal("opened by one customer's failures")
			}
		}
	})
	t.Run("an answered call in between keeps it closed", func(t *testing.T) {
		st, _ := clocked(t)
		record(st, "acme", true)
		record(st, "globex", true)
		record(st, "initech", false)
		if record(st, "acme", true) != 0 {
			t.Fatal("opened although a call was answered in between")
		}
	})
	t.Run("slow failures count only if nothing was answered since they began", func(t *testing.T) {
		st, advance := clocked(t)
		slow := func(customer string, began time.Time) int {
			t.Helper()
			change, err := st.Guards.BreakerRecord(ctx, "", rule, customer, true, began)
			if err != nil {
				t.Fatal(err)
			}
			return change
		}
		began := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) // clocked's now: the slow calls begin
		advance(time.Second)
		record(st, "initech", false) // the platform answers another call meanwhile
		advance(time.Second)
		for _, c := range []string{"acme", "globex", "umbrella", "acme"} {
			if slow(c, began) != 0 {
				t.Fatal("slow failures opened it though the platform answered while they ran")
			}
		}
		began = began.Add(2 * time.Second) // begun after the last answer
		advance(3 * time.Second)
		slow("acme", began)
		slow("globex", began)
		if slow("acme", began) != 1 {
			t.Fatal("slow failures of 2 customers with nothing answered since they began did not open it")
		}
	})
	t.Run("failures outside the window do not count", func(t *testing.T) {
		st, advance := clocked(t)
		record(st, "acme", true)
		record(st, "globex", true)
		advance(2 * time.Minute)
		if record(st, "acme", true) != 0 {
			t.Fatal("opened by failures older than the window")
		}
	})
	t.Run("open, cool-down, probe", func(t *testing.T) {
		st, advance := clocked(t)
		record(st, "acme", true)
		record(st, "globex", true)
		if record(st, "acme", true) != 1 {
			t.Fatal("3 failures of 2 customers did not open it")
		}
		if left, _ := st.Guards.BreakerOpen(ctx, ""); left <= 0 || left > rule.Cooldown {
			t.Errorf("BreakerOpen = %s while open", left)
		}
		if ok, _, wait := allow(st); ok || wait <= 0 {
			t.Errorf("allowed %v (wait %s) while open", ok, wait)
		}
		advance(rule.Cooldown + time.Second)
		if left, _ := st.Guards.BreakerOpen(ctx, ""); left != 0 {
			t.Errorf("BreakerOpen = %s after the cool-down", left)
		}
		if ok, probe, _ := allow(st); !ok || !probe {
			t.Fatalf("after the cool-down: allowed %v probe %v, want the probe", ok, probe)
		}
		if ok, _, wait := allow(st); ok || wait <= 0 {
			t.Errorf("a second call while the probe is out: allowed %v wait %s", ok, wait)
		}
		if record(st, "acme", true) != 1 {
			t.Fatal("a failed probe did not open it again")
		}
		if ok, _, _ := allow(st); ok {
			t.Error("allowed right after a failed probe")
		}
		advance(rule.Cooldown + time.Second)
		if ok, probe, _ := allow(st); !ok || !probe {
			t.Fatal("no probe after the second cool-down")
		}
		if record(st, "globex", false) != -1 {
			t.Fatal("an answered probe did not close it")
		}
		if ok, probe, _ := allow(st); !ok || probe {
			t.Errorf("closed: allowed %v probe %v", ok, probe)
		}
	})
	t.Run("an abandoned probe lets the next one out", func(t *testing.T) {
		st, advance := clocked(t)
		for _, c := range []string{"acme", "globex", "acme"} {
			record(st, c, true)
		}
		advance(rule.Cooldown + time.Second)
		allow(st)
		if err := st.Guards.AbandonProbe(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if ok, probe, _ := allow(st); !ok || !probe {
			t.Error("no new probe after one was abandoned")
		}
	})
}

// TestTakeCall: the fleet's rate holds in every second, bursts are capped,
// readers leave warming its share while it waits, and a pause stops all.
func TestTakeCall(t *testing.T) {
	ctx := context.Background()
	st, advance := clocked(t)
	rule := store.RateRule{Rate: 4, Burst: 2, Readers: 3}
	take := func(warming bool) time.Duration {
		t.Helper()
		d, err := st.Guards.TakeCall(ctx, "", rule, warming)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Calls go as soon as allowed, over 3 s: never more than 2 within half a
	// second, nor more than 4 within a rate window (a second and its slack).
	var at []time.Duration
	for elapsed := time.Duration(0); elapsed < 3*time.Second; {
		if d := take(false); d > 0 {
			advance(d)
			elapsed += d
			continue
		}
		at = append(at, elapsed)
	}
	for i := range at {
		if i >= 2 && at[i]-at[i-2] < 500*time.Millisecond {
			t.Errorf("calls at %v: 3 within half a second (burst 2)", at)
		}
		if i >= 4 && at[i]-at[i-4] < store.RateWindow {
			t.Errorf("calls at %v: 5 within a rate window (rate 4)", at)
		}
	}
	if len(at) != 12 {
		t.Errorf("%d calls in 3 s at 4/s, want 12: %v", len(at), at)
	}

	advance(2 * time.Second)
	rule = store.RateRule{Rate: 8, Burst: 8, Readers: 6}
	if d := take(true); d != 0 { // a warming call waits (and goes)
		t.Fatalf("warming call: wait %s", d)
	}
	readers := 0
	for take(false) == 0 {
		readers++
	}
	if readers != 6 {
		t.Errorf("readers got %d calls while warming waits, want their 6 of the rate of 8", readers)
	}
	if d := take(true); d != 0 {
		t.Errorf("warming starved: wait %s", d)
	}

	advance(2 * time.Second)
	if err := st.Guards.PauseCalls(ctx, "", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := take(true); d != 3*time.Second {
		t.Errorf("during a pause of 3s: wait %s", d)
	}
}
