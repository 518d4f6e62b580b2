package scheduler_test

import (
	"slices"
	"testing"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/scheduler"
)

// FuzzParse: no plan file makes the parser panic, and a file it accepts has
// plans a scheduler can run: each named, with known ranges and customers.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"timezone: Europe/Berlin\nplans:\n  - name: nightly\n    cron: \"0 2 * * *\"\n    customers: [acme, globex]\n    ranges: [yesterday, last_7_days]\n",
		"plans:\n  - name: all\n    cron: \"@every 10m\"\n    customers: all\n    ranges: [month_to_date]\n",
		"plans: [{name: a, cron: '61 * * * *', customers: [acme], ranges: [yesterday]}]",
		"plans: [{name: r, cron: '@hourly', customers: all, ranges: [recently_read], read_within: 2h}]",
		"plans: [{name: d, cron: '0 2 * * *', customers: [acme], ranges: [yesterday], deadline: '06:00'}]",
		"plans:\n  - &a {name: x}\n  - *a\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := scheduler.Parse(data)
		if err != nil {
			return
		}
		if len(file.Plans) == 0 {
			t.Fatal("accepted a file without plans")
		}
		for _, p := range file.Plans {
			if p.Name == "" || len(p.Ranges) == 0 || (!p.Customers.All && len(p.Customers.Names) == 0) {
				t.Fatalf("accepted an incomplete plan %+v", p)
			}
			for _, r := range p.Ranges {
				if r != scheduler.RecentlyRead && !slices.Contains(dashcache.PresetNames, r) {
					t.Fatalf("accepted an unknown range %q", r)
				}
			}
			for _, c := range p.Customers.Names {
				if dashcache.CheckCustomer(c) != nil {
					t.Fatalf("accepted a bad customer %q", c)
				}
			}
		}
	})
}
