package scheduler_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/scheduler"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	f, err := scheduler.Parse([]byte(`
timezone: Europe/Berlin
plans:
  - name: nightly
    cron: "0 2 * * *"               # 5-field cron or a descriptor: @daily, @every 10m
    customers: [acme, globex]
    ranges: [yesterday, last_7_days, month_to_date]
  - name: everyone
    cron: "@daily"
    customers: all
    ranges: [previous_month]
  - name: often
    cron: "@every 10m"
    customers:
      - acme
      - Big.Co_2-x
    ranges: [year_to_date, last_30_days]
  - name: by-six
    cron: "0 2 * * *"
    customers: [acme]
    ranges: [yesterday]
    deadline: 06:00
  - name: by-midnight
    cron: "0 22 * * *"
    customers: [acme]
    ranges: [yesterday]
    deadline: "00:00"
`))
	if err != nil {
		t.Fatal(err)
	}
	want := &scheduler.File{
		Timezone: "Europe/Berlin",
		Plans: []scheduler.Plan{
			{Name: "nightly", Cron: "0 2 * * *", Customers: scheduler.Customers{Names: []string{"acme", "globex"}},
				Ranges: []string{"yesterday", "last_7_days", "month_to_date"}},
			{Name: "everyone", Cron: "@daily", Customers: scheduler.Customers{All: true},
				Ranges: []string{"previous_month"}},
			{Name: "often", Cron: "@every 10m", Customers: scheduler.Customers{Names: []string{"acme", "Big.Co_2-x"}},
				Ranges: []string{"year_to_date", "last_30_days"}},
			{Name: "by-six", Cron: "0 2 * * *", Customers: scheduler.Customers{Names: []string{"acme"}},
				Ranges: []string{"yesterday"}, Deadline: "06:00"},
			{Name: "by-midnight", Cron: "0 22 * * *", Customers: scheduler.Customers{Names: []string{"acme"}},
				Ranges: []string{"yesterday"}, Deadline: "00:00"},
		},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", f, want)
	}

	// timezone is optional.
	if _, err := scheduler.Parse([]byte("plans: [{name: a, cron: '@hourly', customers: [acme], ranges: [yesterday]}]")); err != nil {
		t.Errorf("no timezone: %v", err)
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	// plan builds a one-plan file; a field given as "-" is left out.
	plan := func(name, cron, customers, ranges string) string {
		var b strings.Builder
		b.WriteString("plans:\n  - ")
		for _, f := range [][2]string{{"name", name}, {"cron", cron}, {"customers", customers}, {"ranges", ranges}} {
			if f[1] != "-" {
				b.WriteString(f[0] + ": " + f[1] + "\n    ")
			}
		}
		return b.String()
	}
	cases := []struct {
		name string
		file string
		want []string // each must appear in the error
	}{
		{"unknown plan field", plan("a", `"@daily"`, "[acme]", "[yesterday]") + "custmers: [x]\n",
			[]string{"custmers", "name, cron, customers, reports, ranges, read_within and deadline"}},
		{"bad read_within", plan("a", `"@daily"`, "[acme]", "[recently_read]") + "read_within: 8d\n",
			[]string{`plan "a"`, `read_within "8d"`, "24h"}},
		{"read_within too long", plan("a", `"@daily"`, "[acme]", "[recently_read]") + "read_within: 200h\n",
			[]string{`plan "a"`, "up to 168h"}},
		{"read_within without recently_read", plan("a", `"@daily"`, "[acme]", "[yesterday]") + "read_within: 24h\n",
			[]string{`plan "a"`, "ranges does not list recently_read"}},
		{"deadline not a time of day", plan("a", `"@daily"`, "[acme]", "[yesterday]") + "deadline: 6am\n",
			[]string{`plan "a"`, `deadline "6am"`, "HH:MM", "06:00"}},
		{"deadline past 23:59", plan("a", `"@daily"`, "[acme]", "[yesterday]") + "deadline: \"24:00\"\n",
			[]string{`plan "a"`, `deadline "24:00"`, "00:00 to 23:59"}},
		{"deadline without its leading zero", plan("a", `"@daily"`, "[acme]", "[yesterday]") + "deadline: \"6:00\"\n",
			[]string{`plan "a"`, `deadline "6:00"`, "HH:MM"}},
		{"deadline with seconds", plan("a", `"@daily"`, "[acme]", "[yesterday]") + "deadline: \"06:00:00\"\n",
			[]string{`plan "a"`, `deadline "06:00:00"`}},
		{"unknown top-level field", "timezon: UTC\n" + plan("a", `"@daily"`, "[acme]", "[yesterday]"),
			[]string{"timezon", "timezone and plans"}},
		{"bad cron", plan("nightly", `"0 2 * *"`, "[acme]", "[yesterday]"),
			[]string{`plan "nightly"`, `cron "0 2 * *"`, "5 fields", "@every 10m"}},
		{"six-field cron", plan("nightly", `"0 0 2 * * *"`, "[acme]", "[yesterday]"),
			[]string{`plan "nightly"`, "cron", "5 fields"}},
		{"bad descriptor", plan("nightly", `"@sometimes"`, "[acme]", "[yesterday]"),
			[]string{`plan "nightly"`, "@sometimes", "@daily"}},
		{"cron zone prefix", plan("nightly", `"CRON_TZ=UTC"`, "[acme]", "[yesterday]"),
			[]string{`plan "nightly"`, "timezone:"}},
		{"cron never fires", plan("nightly", `"0 0 30 2 *"`, "[acme]", "[yesterday]"),
			[]string{`plan "nightly"`, "never fires"}},
		{"unknown preset", plan("nightly", `"@daily"`, "[acme]", "[yesterday, last_week]"),
			[]string{`plan "nightly"`, "ranges", `"last_week"`, strings.Join(dashcache.PresetNames, ", "), "recently_read"}},
		{"bad customer", plan("nightly", `"@daily"`, `[acme, "ac/me"]`, "[yesterday]"),
			[]string{`plan "nightly"`, "customers", `"ac/me"`, "A-Z a-z 0-9 . _ -"}},
		{"customers a word other than all", plan("nightly", `"@daily"`, "everyone", "[yesterday]"),
			[]string{"customers", "list of customer names", "all", `"everyone"`}},
		{"customers a map", plan("nightly", `"@daily"`, "{a: b}", "[yesterday]"),
			[]string{"customers", "list of customer names"}},
		{"duplicate name", plan("a", `"@daily"`, "[acme]", "[yesterday]") +
			"\n  - name: a\n    cron: '@hourly'\n    customers: [acme]\n    ranges: [yesterday]\n",
			[]string{`plan "a"`, "plans 1 and 2", "unique"}},
		{"bad timezone", "timezone: Europe/Berln\n" + plan("a", `"@daily"`, "[acme]", "[yesterday]"),
			[]string{`timezone "Europe/Berln"`, "IANA", "Europe/Berlin"}},
		{"missing name", plan("-", `"@daily"`, "[acme]", "[yesterday]"),
			[]string{"plan 1", "name is required"}},
		{"missing cron", plan("a", "-", "[acme]", "[yesterday]"),
			[]string{`plan "a"`, "cron is required", "@daily"}},
		{"missing customers", plan("a", `"@daily"`, "-", "[yesterday]"),
			[]string{`plan "a"`, "customers is required", "all"}},
		{"empty customers", plan("a", `"@daily"`, "[]", "[yesterday]"),
			[]string{`plan "a"`, "customers is required"}},
		{"missing ranges", plan("a", `"@daily"`, "[acme]", "-"),
			[]string{`plan "a"`, "ranges is required", "last_7_days"}},
		{"no plans", "timezone: UTC\n", []string{"at least one plan"}},
		{"empty file", "", []string{"empty", "plans"}},
		{"two documents", plan("a", `"@daily"`, "[acme]", "[yesterday]") + "\n---\nplans: []\n",
			[]string{"more than one YAML document"}},
		{"not YAML", "plans: [", []string{"yaml"}},
		{"every problem at once", "timezone: Nowhere\n" + plan("a", `"bad"`, `["x y"]`, "[nope]"),
			[]string{"Nowhere", `cron "bad"`, `"x y"`, `"nope"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := scheduler.Parse([]byte(c.file))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", c.file)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v\nfile:\n%s", w, err, c.file)
				}
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "plans.yaml")
	if err := os.WriteFile(good, []byte("plans: [{name: a, cron: '@daily', customers: all, ranges: [yesterday]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := scheduler.LoadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Plans) != 1 || !f.Plans[0].Customers.All {
		t.Errorf("LoadFile = %+v", f)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("plans: [{name: a, cron: '@daily', customers: all, ranges: [nope]}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := scheduler.LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("LoadFile(bad): %v, want an error naming the file", err)
	}
	if _, err := scheduler.LoadFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("LoadFile(missing): no error")
	}
}
