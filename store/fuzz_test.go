package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
)

// FuzzParseEntry: no bytes in Redis make the entry parser panic; an entry it
// accepts has the body its header says; and every entry NewEntry builds
// (compressed or not) parses back to its report.
func FuzzParseEntry(f *testing.F) {
	k := dashcache.ReportKey{Customer: "acme", From: dashcache.CivilDay(2025, 1, 1), To: dashcache.CivilDay(2025, 1, 31)}
	good := string(store.NewEntry(k, []byte(`{"revenue":12}`), time.UnixMilli(1740000000123), 2*time.Second, time.Hour))
	for _, s := range []string{good, good[:len(good)-1], "garbage", "dc3 1 2 3 0 \"e\"\n", "dc3 -1 -2 -3 2 \"\"\n{}"} {
		f.Add(s, `{"n":1}`)
	}
	f.Fuzz(func(t *testing.T, raw, data string) {
		if e, err := store.ParseEntry(raw); err == nil && !strings.HasSuffix(raw, e.Body) {
			t.Fatalf("parsed %q into a body that is not its tail: %q", raw, e.Body)
		}
		built := string(store.NewEntry(k, []byte(data), time.UnixMilli(1740000000123), time.Second, time.Hour))
		e, err := store.ParseEntry(built)
		if err != nil {
			t.Fatalf("an entry built from %q does not parse: %v", data, err)
		}
		if json, err := e.JSON(); err != nil || !strings.HasSuffix(json, `"data":`+data+"}") {
			t.Fatalf("an entry built from %q does not give its JSON back: %v %q", data, err, json)
		}
	})
}
