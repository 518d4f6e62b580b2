package api_test

import (
	"strings"
	"testing"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/api"
)

// FuzzParseQuery: no query makes the read's parser panic, and every query it
// accepts names a report within the rules: a valid customer, from <= to, at
// most 366 days, not in the future nor past the horizon, a wait from 0 to
// 30 s; and its canonical key parses back to it.
func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{
		"customer=acme&from=2025-01-01&to=2025-01-31",
		"customer=acme&from=2025-01-01&to=2025-01-31&wait=500ms",
		"customer=a%7Cb&from=2025-01-01&to=2025-01-01",
		"customer=acme&customer=x&from=2025-02-30&to=0001-01-01&wait=-1s",
		"from=2025-03-10&to=2025-03-10&customer=" + strings.Repeat("x", 64),
	} {
		f.Add(q)
	}
	fx := newFixture(f)
	f.Fuzz(func(t *testing.T, q string) {
		k, wait, err := api.ParseQuery(fx.srv, q)
		if err != nil {
			return
		}
		back, perr := dashcache.ParseCanonical(k.String())
		today := dashcache.DayOf(now)
		if dashcache.CheckCustomer(k.Customer) != nil || k.Report != "" || k.To < k.From || k.To > today ||
			k.To-k.From > 365 || k.From < dashcache.DayOf(now.AddDate(-dashcache.HorizonYears, 0, 0)) ||
			wait < 0 || wait > api.MaxWait || perr != nil || back != k {
			t.Fatalf("accepted %q as %+v (wait %s)", q, k, wait)
		}
	})
}

// FuzzParseAPIKeys: no setting makes the API-key parser panic, and its
// errors never repeat a key.
func FuzzParseAPIKeys(f *testing.F) {
	for _, s := range []string{
		"key-one-0123456789=acme|globex,key-two-0123456789=*",
		"short=*", "=acme", "key-one-0123456789=", "key-one-0123456789=ac me,,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := api.ParseAPIKeys(s)
		if err == nil {
			return
		}
		for _, entry := range strings.Split(s, ",") {
			key, _, _ := strings.Cut(strings.TrimSpace(entry), "=")
			if len(key) >= 8 && strings.Contains(err.Error(), key) {
				t.Fatalf("error %q repeats the key %q", err, key)
			}
		}
	})
}
