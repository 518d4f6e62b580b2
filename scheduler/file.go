package scheduler

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/yamlfile"
)

// File is a warming plan file (DASHCACHE_SCHEDULE_FILE):
//
//	timezone: Europe/Berlin
//	plans:
//	  - name: nightly
//	    cron: "0 2 * * *"
//	    customers: [acme, globex]   # or: customers: all
//	    ranges: [yesterday, last_7_days, month_to_date]
//	    reports: [revenue, orders]  # of the report catalogue; default: the default report
//	    deadline: "06:00"           # optional: its warm should be done by then
//	  - name: what-is-read
//	    cron: "@every 6h"
//	    customers: all
//	    ranges: [recently_read]       # the ranges dashboards read lately
//	    read_within: 24h
type File struct {
	// Timezone is the IANA zone that cron times and "today" are computed in;
	// empty means Config.DefaultZone (DASHCACHE_TIMEZONE), else UTC.
	Timezone string `yaml:"timezone"`
	// Plans are the warming plans; at least one.
	Plans []Plan `yaml:"plans"`
}

// Plan warms the reports of some customers over some range presets each time
// its cron schedule fires.
type Plan struct {
	// Name identifies the plan in logs and in RunPlan; unique in a file.
	Name string `yaml:"name"`
	// Cron is a 5-field cron expression (minute hour day-of-month month
	// day-of-week) or a descriptor such as @daily or @every 10m.
	Cron string `yaml:"cron"`
	// Customers are the customers to warm.
	Customers Customers `yaml:"customers"`
	// Reports are the reports of the catalogue (DASHCACHE_REPORTS_FILE)
	// to warm; none: the default report.
	Reports []string `yaml:"reports"`
	// Ranges are range presets (see dashcache.PresetNames), computed when the
	// plan fires, and RecentlyRead: every range of the customer read within
	// ReadWithin.
	Ranges []string `yaml:"ranges"`
	// ReadWithin is how lately a range must have been read for
	// RecentlyRead to warm it: a Go duration; default
	// dashcache.DefaultReadWithin.
	ReadWithin string        `yaml:"read_within"`
	within     time.Duration // ReadWithin, parsed by New
	// Deadline is when the warm of each firing should be done: a time of
	// day HH:MM in the file's zone, the first such time after the firing
	// (so "06:00" for a plan firing at 02:00 is 4 hours later, and for one
	// firing at 23:00 the next morning). Optional: empty is no deadline.
	// It suits a plan that fires at most once a day.
	Deadline string `yaml:"deadline"`
}

// RecentlyRead, in a plan's ranges, stands for the ranges of each customer
// read within the plan's read_within.
const RecentlyRead = "recently_read"

// readWithin returns the plan's read_within, checked.
func (p Plan) readWithin() (time.Duration, error) {
	if p.ReadWithin == "" {
		return dashcache.DefaultReadWithin, nil
	}
	d, err := dashcache.ParseReadWithin(p.ReadWithin)
	if err != nil || d == 0 {
		return 0, fmt.Errorf("read_within %q: want a Go duration above 0 and up to %s, such as 24h", p.ReadWithin, dashcache.ReadsKept)
	}
	if !slices.Contains(p.Ranges, RecentlyRead) {
		return 0, fmt.Errorf("read_within is given, but ranges does not list %s", RecentlyRead)
	}
	return d, nil
}

// clock is a time of day, hours and minutes.
type clock struct{ hour, minute int }

// deadline returns the plan's deadline, checked; ok is false for none.
func (p Plan) deadline() (c clock, ok bool, err error) {
	if p.Deadline == "" {
		return clock{}, false, nil
	}
	t, err := time.Parse("15:04", p.Deadline)
	if err != nil || len(p.Deadline) != len("15:04") {
		return clock{}, false, fmt.Errorf("deadline %q: want a time of day HH:MM (00:00 to 23:59) in the file's timezone, such as \"06:00\"", p.Deadline)
	}
	return clock{t.Hour(), t.Minute()}, true, nil
}

// after returns the first time of day c strictly after t, in t's zone. On a
// day whose clocks skip c (a change to summer time), it is the time the
// clocks show then, as time.Date gives it.
func (c clock) after(t time.Time) time.Time {
	y, mo, d := t.Date()
	at := time.Date(y, mo, d, c.hour, c.minute, 0, 0, t.Location())
	if !at.After(t) {
		at = time.Date(y, mo, d+1, c.hour, c.minute, 0, 0, t.Location())
	}
	return at
}

// Customers is a plan's customers: either a list of names or, written as the
// word all in YAML, every customer the BI platform lists when the plan fires.
type Customers struct {
	// All means: ask the BI platform for its customers at fire time.
	All bool
	// Names are the customers to warm when All is false.
	Names []string
}

// UnmarshalYAML accepts a sequence of customer names or the scalar "all".
func (c *Customers) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "all" {
			*c = Customers{All: true}
			return nil
		}
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: customers must be a list of customer names, such as [acme, globex], or the word all; got %q",
			n.Line, n.Value)}}
	case yaml.SequenceNode:
		var names []string
		if err := n.Decode(&names); err != nil {
			return err
		}
		*c = Customers{Names: names}
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf(
		"line %d: customers must be a list of customer names, such as [acme, globex], or the word all",
		n.Line)}}
}

// LoadFile reads and validates a warming plan file; see Parse.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading schedule file: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("schedule file %s: %w", path, err)
	}
	return f, nil
}

// Parse decodes and validates a warming plan file. Unknown fields are errors,
// and every problem found is reported, each naming the plan and the field and
// saying what is accepted.
func Parse(data []byte) (*File, error) {
	var f File
	err := yamlfile.Decode(data, &f, map[string]string{
		"scheduler.File": "the file accepts timezone and plans",
		"scheduler.Plan": "a plan accepts name, cron, customers, reports, ranges, read_within and deadline",
	}, "the file is empty; it needs a plans: list (see the warming plan in the README)",
		"the file holds more than one YAML document; put every plan under one plans: list")
	if err != nil {
		return nil, err
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// validate reports every problem in f, joined.
func (f *File) validate() error {
	var errs []error
	if f.Timezone != "" {
		if _, err := time.LoadLocation(f.Timezone); err != nil {
			errs = append(errs, fmt.Errorf("timezone %q is not a known time zone; use an IANA name such as Europe/Berlin or UTC", f.Timezone))
		}
	}
	if len(f.Plans) == 0 {
		errs = append(errs, errors.New("plans: at least one plan is required"))
	}
	seen := make(map[string]int)
	for i, p := range f.Plans {
		where := fmt.Sprintf("plan %q", p.Name)
		if p.Name == "" {
			where = fmt.Sprintf("plan %d", i+1)
			errs = append(errs, fmt.Errorf("%s: name is required, unique in the file", where))
		} else if j, dup := seen[p.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: name is used by plans %d and %d; names must be unique", where, j+1, i+1))
			where = fmt.Sprintf("plan %d (%q)", i+1, p.Name)
		} else {
			seen[p.Name] = i
		}
		if _, err := parseCron(p.Cron); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if !p.Customers.All {
			if len(p.Customers.Names) == 0 {
				errs = append(errs, fmt.Errorf("%s: customers is required: a list of customer names, such as [acme, globex], or the word all", where))
			}
			for _, c := range p.Customers.Names {
				if err := validCustomer(c); err != nil {
					errs = append(errs, fmt.Errorf("%s: customers: %q: %w", where, c, err))
				}
			}
		}
		if len(p.Ranges) == 0 {
			errs = append(errs, fmt.Errorf("%s: ranges is required: a list of presets from %s, or %s", where, strings.Join(dashcache.PresetNames, ", "), RecentlyRead))
		}
		for _, r := range p.Ranges {
			if r == RecentlyRead {
				continue
			}
			if _, _, err := dashcache.PresetRange(r, time.Now()); err != nil {
				errs = append(errs, fmt.Errorf("%s: ranges: %w (or %s)", where, err, RecentlyRead))
			}
		}
		if _, err := p.readWithin(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		if _, _, err := p.deadline(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
	}
	return errors.Join(errs...)
}

const cronHelp = `5 fields (minute hour day-of-month month day-of-week) such as "0 2 * * *", or a descriptor such as @daily, @hourly or @every 10m`

// parseCron parses a plan's cron expression: 5 fields or a descriptor.
func parseCron(spec string) (s cron.Schedule, err error) {
	if strings.TrimSpace(spec) == "" {
		return nil, errors.New("cron is required: " + cronHelp)
	}
	// The zone comes from the file's timezone, so that cron times and "today"
	// agree. (cron v3.0.1 also panics on "TZ=x" without a following space.)
	if t := strings.TrimSpace(spec); strings.HasPrefix(t, "TZ=") || strings.HasPrefix(t, "CRON_TZ=") {
		return nil, fmt.Errorf("cron %q: a zone prefix is not accepted; set timezone: at the top of the file", spec)
	}
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("cron %q is not valid; use %s", spec, cronHelp)
		}
	}()
	s, err = cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("cron %q: %v; use %s", spec, err, cronHelp)
	}
	if s.Next(time.Now()).IsZero() {
		return nil, fmt.Errorf("cron %q never fires (no such date); use %s", spec, cronHelp)
	}
	return s, nil
}

// validCustomer checks a customer name against the rules of the report key.
func validCustomer(name string) error {
	// yesterday always gives a valid range, so only the name can fail.
	_, err := dashcache.PresetKey(name, "yesterday", time.Now())
	return err
}
