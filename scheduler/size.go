package scheduler

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/dashcache/dashcache"
)

// Backend is what a warm can use of one BI back end.
type Backend struct {
	// Rate is how many calls the fleet makes to it in each Window.
	Rate int
	// Window is the span Rate is counted over (store.RateWindow): queued
	// calls go at Rate per Window. Default: a second.
	Window time.Duration
	// Latency is how long one of its calls takes; 0: not known.
	Latency time.Duration
	// LatencyFrom says, for people, where Latency comes from, such as
	// "p50 of 812 calls" or "--latency".
	LatencyFrom string
}

// window returns the span the rate is counted over.
func (b Backend) window() time.Duration { return cmp.Or(b.Window, time.Second) }

// Capacity is what a warm can use: its back ends, by name ("" is the
// default report's BI platform), and the workers' slots.
type Capacity struct {
	Backends map[string]Backend
	// Slots is how many tasks the live workers run at once; 0: not known.
	Slots int
	// SlotsFrom says, for people, where Slots comes from, such as "3 live
	// workers" or "--slots".
	SlotsFrom string
}

// Known is what the index holds of some customers' reports (see
// Config.Known).
type Known struct {
	// FreshUntil has each report cached, with when it stops being fresh.
	FreshUntil map[dashcache.ReportKey]time.Time
	// Read has the reports each customer read since the time asked.
	Read map[string][]dashcache.ReportKey
}

// Size is a plan's warm, sized: what it asks for, the BI calls that makes,
// and how long they take.
type Size struct {
	Plan string
	// Fires is the firing sized: the next one (Project), or the one that
	// fired.
	Fires time.Time
	// Deadline is when the warm should be done; zero: the plan states none.
	Deadline time.Time
	// Customers, Ranges and Reports are what the plan multiplies: its
	// customers (counted as the BI platform lists them, for customers:
	// all), its presets, and its reports.
	Customers, Ranges, Reports int
	// ListedCustomers: the customers are the BI platform's list.
	ListedCustomers bool
	// Keys is how many reports it asks for, each once: a partitioned
	// report's are the months its ranges touch.
	Keys int
	// Partitioned: some of its reports are partitioned by month.
	Partitioned bool
	// ReadWithin, for a plan of recently_read, is its read_within, and
	// ReadLately how many of Keys are reports read within it that none of
	// the plan's presets gives: read before the firing, or, for the next
	// firing (Project), an estimate: those read within it before now (the
	// reads until the firing count then); -1 when they cannot be known in
	// advance (no index).
	ReadWithin time.Duration
	ReadLately int
	// Fresh is how many of Keys the index holds fresh past Fires: their
	// fill tasks make no BI call. -1: not known (no index).
	Fresh int
	// Calls is the BI calls the warm makes, by back end.
	Calls map[string]int
	// Capacity is what the warm was sized with.
	Capacity Capacity
}

// TotalCalls returns the BI calls of every back end.
func (z Size) TotalCalls() int {
	n := 0
	for _, c := range z.Calls {
		n += c
	}
	return n
}

// byRate returns how long the back end's calls take at its rate.
func (z Size) byRate(backend string) time.Duration {
	b := z.Capacity.Backends[backend]
	if b.Rate <= 0 {
		return 0
	}
	return time.Duration(z.Calls[backend]) * b.window() / time.Duration(b.Rate)
}

// slotTime returns how long the calls hold a slot, together (calls x
// latency); ok is false when a back end with calls has no known latency.
func (z Size) slotTime() (d time.Duration, ok bool) {
	for name, n := range z.Calls {
		l := z.Capacity.Backends[name].Latency
		if n > 0 && l <= 0 {
			return 0, false
		}
		d += time.Duration(n) * l
	}
	return d, true
}

// BySlots returns how long the calls hold the workers' slots (calls x
// latency / slots, over every back end: the slots are shared); ok is false
// when the slots or a latency is not known.
func (z Size) BySlots() (d time.Duration, ok bool) {
	d, ok = z.slotTime()
	if !ok || z.Capacity.Slots <= 0 {
		return 0, false
	}
	return d / time.Duration(z.Capacity.Slots), true
}

// Duration returns how long the warm takes: the longest of each back end's
// calls at its rate and of every call on the workers' slots (when known).
func (z Size) Duration() time.Duration {
	var d time.Duration
	for name := range z.Calls {
		d = max(d, z.byRate(name))
	}
	if s, ok := z.BySlots(); ok {
		d = max(d, s)
	}
	return d
}

// Finish returns when the warm is done.
func (z Size) Finish() time.Time { return z.Fires.Add(z.Duration()) }

// Late reports whether the plan states a deadline that the warm misses.
func (z Size) Late() bool { return !z.Deadline.IsZero() && z.Finish().After(z.Deadline) }

// Needs returns what would finish the warm by its deadline: each back
// end's rate, and the slots (0 when a latency is not known).
func (z Size) Needs() (rates map[string]int, slots int) {
	window := z.Deadline.Sub(z.Fires)
	rates = make(map[string]int, len(z.Calls))
	for name, n := range z.Calls {
		if n > 0 {
			rates[name] = ceilDiv(time.Duration(n)*z.Capacity.Backends[name].window(), window)
		}
	}
	if d, ok := z.slotTime(); ok {
		slots = ceilDiv(d, window)
	}
	return rates, slots
}

// ceilDiv returns a/b rounded up.
func ceilDiv(a, b time.Duration) int { return int((a + b - 1) / b) }

// sizeBatch is how many customers' index is read in one round trip.
const sizeBatch = 1000

// Project sizes the named plan's next firing: it lists the customers (for
// customers: all, from the BI platform, as a firing does), makes the keys of
// that day, leaves out those the index holds fresh past the firing, counts
// the BI calls by back end, and reads the capacity (Config.Capacity).
func (s *Scheduler) Project(ctx context.Context, name string) (Size, error) {
	p, ok := s.plans[name]
	if !ok {
		return Size{}, fmt.Errorf("scheduler: no plan named %q; the plans are %q", name, s.order)
	}
	if s.capacity == nil {
		return Size{}, errors.New("scheduler: Config.Capacity is required to size a plan")
	}
	now := s.now()
	next := s.schedules[name].Next(now.In(s.zone))
	customers, err := s.customersOf(ctx, p, s.log.With().Str("plan", name).Logger())
	if err != nil {
		return Size{}, err
	}
	z := s.newSize(p, next, len(customers))
	var readSince time.Time
	if slices.Contains(p.Ranges, RecentlyRead) {
		readSince = now.Add(-p.within)
	}
	for batch := range slices.Chunk(customers, sizeBatch) {
		known, err := s.knownOf(ctx, batch, now, readSince)
		if err != nil {
			return Size{}, err
		}
		keys, _ := planKeys(p, s.served, batch, next, func(c string) ([]dashcache.ReportKey, error) {
			return known.Read[c], nil
		})
		z.count(p, keys, known, s.backendOf)
	}
	return s.withCapacity(ctx, z)
}

// size sizes the firing of p at firedAt that asked for keys of customers.
func (s *Scheduler) size(ctx context.Context, p Plan, firedAt time.Time, customers []string, keys []dashcache.ReportKey) (Size, error) {
	z := s.newSize(p, firedAt, len(customers))
	if z.ReadWithin > 0 {
		z.ReadLately = 0 // the firing read them
	}
	for batch := range slices.Chunk(customers, sizeBatch) {
		in := make(map[string]bool, len(batch))
		for _, c := range batch {
			in[c] = true
		}
		n := 0 // planKeys gives a customer's keys in a row, in the customers' order
		for n < len(keys) && in[keys[n].Customer] {
			n++
		}
		known, err := s.knownOf(ctx, batch, s.now(), time.Time{})
		if err != nil {
			return Size{}, err
		}
		z.count(p, keys[:n], known, s.backendOf)
		keys = keys[n:]
	}
	return s.withCapacity(ctx, z)
}

// newSize returns the size of p firing at fires, before its keys are
// counted.
func (s *Scheduler) newSize(p Plan, fires time.Time, customers int) Size {
	z := Size{
		Plan: p.Name, Fires: fires, Customers: customers, Reports: len(p.reports()),
		ListedCustomers: p.Customers.All, Calls: map[string]int{}, Fresh: -1,
	}
	for _, r := range p.reports() {
		z.Partitioned = z.Partitioned || s.served.Partition(r) != nil
	}
	for _, r := range p.Ranges {
		if r == RecentlyRead {
			z.ReadWithin, z.ReadLately = p.within, -1
		} else {
			z.Ranges++
		}
	}
	if s.known != nil {
		z.Fresh = 0
		if z.ReadWithin > 0 {
			z.ReadLately = 0
		}
	}
	if c, ok, _ := p.deadline(); ok {
		z.Deadline = c.after(fires)
	}
	return z
}

// knownOf returns what the index holds of customers; nothing without an
// index.
func (s *Scheduler) knownOf(ctx context.Context, customers []string, now, readSince time.Time) (Known, error) {
	if s.known == nil {
		return Known{}, nil
	}
	k, err := s.known(ctx, customers, now, readSince)
	if err != nil {
		return Known{}, fmt.Errorf("reading the index: %w", err)
	}
	return k, nil
}

// count adds keys to z: each a BI call of its back end, unless the index
// holds it fresh past the firing.
func (z *Size) count(p Plan, keys []dashcache.ReportKey, known Known, backendOf func(string) string) {
	z.Keys += len(keys)
	// A range read lately that is also a preset's counts as the preset's.
	presets := map[[2]dashcache.Day]bool{}
	for _, r := range p.Ranges {
		if from, to, err := dashcache.PresetRange(r, z.Fires); err == nil {
			presets[[2]dashcache.Day{from, to}] = true
		}
	}
	for _, k := range keys {
		if z.ReadWithin > 0 && z.ReadLately >= 0 && !presets[[2]dashcache.Day{k.From, k.To}] {
			z.ReadLately++
		}
		if until, ok := known.FreshUntil[k]; ok && until.After(z.Fires) {
			z.Fresh++
			continue
		}
		z.Calls[backendOf(k.Report)]++
	}
}

// withCapacity returns z with the capacity of its back ends.
func (s *Scheduler) withCapacity(ctx context.Context, z Size) (Size, error) {
	c, err := s.capacity(ctx, slices.Sorted(maps.Keys(z.Calls)))
	if err != nil {
		return Size{}, fmt.Errorf("plan %q: reading the capacity: %w", z.Plan, err)
	}
	z.Capacity = c
	return z, nil
}

// logSize logs a plan's size, or why it could not be sized: a warning
// when the warm misses its deadline.
func (s *Scheduler) logSize(log zerolog.Logger, z Size, err error) {
	if err != nil {
		log.Warn().Err(err).Msg("warming plan not sized")
		return
	}
	ev, msg := log.Info(), "warming plan sized"
	if z.Late() {
		ev, msg = log.Warn(), "warming plan cannot finish by its deadline"
	}
	ev = ev.Time("fires", z.Fires).Int("keys", z.Keys).Int("calls", z.TotalCalls()).
		Dur("duration", z.Duration()).Time("finish", z.Finish())
	if !z.Deadline.IsZero() {
		ev = ev.Time("deadline", z.Deadline)
	}
	ev.Str("size", z.Summary()).Strs("detail", z.Detail()).Msg(msg)
}

// Summary says in a line when the warm is done, against its deadline, and
// what it would need to make a deadline it misses.
func (z Size) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d calls from %s take %s, done %s", z.TotalCalls(), z.Fires.Format(minuteLayout),
		z.Duration().Round(time.Second), z.Finish().Round(time.Second).Format(secondLayout))
	switch {
	case z.Deadline.IsZero():
		b.WriteString("; no deadline")
	case z.Late():
		fmt.Fprintf(&b, ", %s after its deadline %s; it needs ", z.Finish().Sub(z.Deadline).Round(time.Second), z.Deadline.Format(minuteLayout))
		rates, slots := z.Needs()
		var needs []string
		for _, name := range slices.Sorted(maps.Keys(rates)) {
			need := fmt.Sprintf("rate %d (now %d)", rates[name], z.Capacity.Backends[name].Rate)
			if len(rates) > 1 {
				need += " for " + backendName(name)
			}
			needs = append(needs, need)
		}
		b.WriteString(strings.Join(needs, ", "))
		if slots > 0 {
			fmt.Fprintf(&b, " and %d slots at %s (now %s)", slots, z.latencies(), orUnknown(z.Capacity.Slots))
		}
	default:
		fmt.Fprintf(&b, ", %s before its deadline %s", z.Deadline.Sub(z.Finish()).Round(time.Second), z.Deadline.Format(minuteLayout))
	}
	return b.String()
}

// Detail says, a line each, what the warm asks for and what each back end
// takes.
func (z Size) Detail() []string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d customers", z.Customers)
	if z.ListedCustomers {
		b.WriteString(" (listed by the BI platform)")
	}
	fmt.Fprintf(&b, " x %d ranges x %d %s: %d reports", z.Ranges, z.Reports, plural(z.Reports, "report", "reports"), z.Keys)
	if z.Partitioned {
		b.WriteString(" (of a report partitioned by month, the months its ranges touch, each once)")
	}
	switch {
	case z.ReadWithin > 0 && z.ReadLately < 0:
		fmt.Fprintf(&b, ", and the ranges read within %s, which cannot be known in advance", z.ReadWithin)
	case z.ReadWithin > 0:
		fmt.Fprintf(&b, ", %d of them read within %s", z.ReadLately, z.ReadWithin)
	}
	switch {
	case z.Fresh < 0:
		b.WriteString("; which are fresh at the firing is not known")
	case z.Fresh == 0:
		b.WriteString("; none fresh past the firing, by the index")
	default:
		fmt.Fprintf(&b, "; %d fresh past the firing, by the index, make no call", z.Fresh)
	}
	lines := []string{b.String()}
	for _, name := range slices.Sorted(maps.Keys(z.Calls)) {
		be := z.Capacity.Backends[name]
		line := fmt.Sprintf("%s: %d calls at rate %d (%d in each %s): %s", backendName(name), z.Calls[name], be.Rate,
			be.Rate, be.window(), z.byRate(name).Round(time.Second))
		switch {
		case be.Latency <= 0:
			line += "; its latency is not known (" + cmp.Or(be.LatencyFrom, "no worker has reported it") + "; --latency gives it)"
		case z.Capacity.Slots <= 0:
			line += fmt.Sprintf("; latency %s (%s), on slots not known (%s; --slots gives them)", be.Latency, be.LatencyFrom, cmp.Or(z.Capacity.SlotsFrom, "no live worker"))
		default:
			line += fmt.Sprintf("; at %s (%s) on %d slots (%s): %s", be.Latency, be.LatencyFrom, z.Capacity.Slots, z.Capacity.SlotsFrom,
				(time.Duration(z.Calls[name]) * be.Latency / time.Duration(z.Capacity.Slots)).Round(time.Second))
		}
		lines = append(lines, line)
	}
	return lines
}

// latencies names the latency of the back ends with calls: one, or theirs.
func (z Size) latencies() string {
	if len(z.Calls) == 1 {
		for name := range z.Calls {
			return z.Capacity.Backends[name].Latency.String()
		}
	}
	return "their latencies"
}

const (
	minuteLayout = "2006-01-02 15:04 MST"
	secondLayout = "2006-01-02 15:04:05 MST"
)

// backendName names a back end for people.
func backendName(name string) string {
	if name == "" {
		return "the default BI platform"
	}
	return "back end " + name
}

func orUnknown(n int) string {
	if n <= 0 {
		return "not known"
	}
	return fmt.Sprint(n)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
