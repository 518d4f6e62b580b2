package store

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/redis/go-redis/v9"
)

var (
	//go:embed mark_stale.lua
	markStaleSrc    string
	markStaleScript = redis.NewScript(markStaleSrc)
)

// MaxReadsKept is how many reports' last reads are remembered per customer
// (for dashcache.ReadsKept): its latest.
const MaxReadsKept = 10000

// indexKept is how long a customer's index outlives its last fill: longer
// than any entry lives.
const indexKept = dashcache.ClosedTTL + dashcache.StaleFor + time.Hour

// Each customer's cached reports are indexed, and its reads remembered, in
// sorted sets of members "from|to", or "report|from|to" for a named report
// (the canonical key without the customer, who is in the key), next to the
// queue on the Redis that does not evict: the index scored by the time the
// entry expires, the reads by the time of the last read. A set of the
// customers indexed serves invalidations of every customer.

func rangeMember(k dashcache.ReportKey) string {
	dates := k.From.String() + "|" + k.To.String()
	if k.Report == "" {
		return dates
	}
	return k.Report + "|" + dates
}

func unixMilli(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// addTrimmed adds zs (scores only rising) to the sorted set key, drops its
// members scored at or before oldest, and lets it expire ttl from now.
func addTrimmed(ctx context.Context, p redis.Pipeliner, key string, oldest time.Time, ttl time.Duration, zs ...redis.Z) {
	p.ZAddGT(ctx, key, zs...)
	p.ZRemRangeByScore(ctx, key, "-inf", unixMilli(oldest))
	p.PExpire(ctx, key, ttl)
}

func scored(at time.Time, member string) redis.Z {
	return redis.Z{Score: float64(at.UnixMilli()), Member: member}
}

// Index is the index of cached reports by customer, of their reads and of
// the data changes announced, on the queue's Redis (which does not evict).
// It is safe for concurrent use.
type Index struct {
	rdb redis.UniversalClient
}

// IndexFill records in its customer's index a report filled, whose entry
// expires at expires, and forgets the entries of the index that have
// expired.
func (x *Index) IndexFill(ctx context.Context, k dashcache.ReportKey, now, expires time.Time) error {
	_, err := x.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		addTrimmed(ctx, p, reportsKey(k.Customer), now, indexKept, scored(expires, rangeMember(k)))
		addTrimmed(ctx, p, indexedKey, now, indexKept, scored(expires, k.Customer))
		return nil
	})
	if err != nil {
		return fmt.Errorf("indexing %s: %w", k, err)
	}
	return nil
}

// Cached returns the customer's reports that the index holds at now.
func (x *Index) Cached(ctx context.Context, customer string, now time.Time) ([]dashcache.ReportKey, error) {
	members, err := x.rdb.ZRangeByScore(ctx, reportsKey(customer), &redis.ZRangeBy{Min: "(" + unixMilli(now), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the index of %s: %w", customer, err)
	}
	return keysOf(customer, members), nil
}

// keysOf returns the reports of a customer's index or reads members;
// a member that does not parse (written by some other version) is skipped.
func keysOf(customer string, members []string) []dashcache.ReportKey {
	out := make([]dashcache.ReportKey, 0, len(members))
	for _, m := range members {
		canonical := customer + "|" + m
		if report, dates, _ := strings.Cut(m, "|"); strings.Contains(dates, "|") {
			canonical = report + "|" + customer + "|" + dates
		}
		if k, err := dashcache.ParseCanonical(canonical); err == nil {
			out = append(out, k)
		}
	}
	return out
}

// Known is what the index holds of some customers' reports.
type Known struct {
	// FreshUntil has each report in the index, with when it stops being
	// fresh as it was filled: its entry's expiry less dashcache.StaleFor.
	// The index does not see a report marked stale since, nor an entry the
	// cache's Redis evicted.
	FreshUntil map[dashcache.ReportKey]time.Time
	// Read has the reports each customer read since the time asked.
	Read map[string][]dashcache.ReportKey
}

// Known returns what the index holds at now of customers' reports: those
// cached and, unless readSince is zero, those read since readSince; one
// pipelined round trip for them all, to size a warm of many customers.
func (x *Index) Known(ctx context.Context, customers []string, now, readSince time.Time) (Known, error) {
	cached := make([]*redis.ZSliceCmd, len(customers))
	read := make([]*redis.StringSliceCmd, len(customers))
	_, err := x.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range customers {
			cached[i] = p.ZRangeByScoreWithScores(ctx, reportsKey(c), &redis.ZRangeBy{Min: "(" + unixMilli(now), Max: "+inf"})
			if !readSince.IsZero() {
				read[i] = p.ZRangeByScore(ctx, readsKey(c), &redis.ZRangeBy{Min: unixMilli(readSince), Max: "+inf"})
			}
		}
		return nil
	})
	if err != nil {
		return Known{}, fmt.Errorf("reading the index of %d customers: %w", len(customers), err)
	}
	k := Known{FreshUntil: map[dashcache.ReportKey]time.Time{}, Read: map[string][]dashcache.ReportKey{}}
	for i, c := range customers {
		for _, z := range cached[i].Val() {
			member, _ := z.Member.(string)
			for _, key := range keysOf(c, []string{member}) {
				k.FreshUntil[key] = time.UnixMilli(int64(z.Score)).Add(-dashcache.StaleFor)
			}
		}
		if read[i] != nil {
			k.Read[c] = keysOf(c, read[i].Val())
		}
	}
	return k, nil
}

// IndexedCustomers returns the customers with reports in the index.
func (x *Index) IndexedCustomers(ctx context.Context) ([]string, error) {
	cs, err := x.rdb.ZRange(ctx, indexedKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the indexed customers: %w", err)
	}
	return cs, nil
}

// MarkStale makes the cached reports keys stale at at, keeping their bytes
// for dashcache.StaleFor at most, as any stale report, and tells the
// readers (in-process caches drop them), in one round trip.
// It returns the keys it marked: those that had a fresh entry.
func (c *Cache) MarkStale(ctx context.Context, keys []dashcache.ReportKey, at time.Time) ([]dashcache.ReportKey, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.Cmd, len(keys))
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			// Eval, not Run: a pipeline cannot fall back from EVALSHA.
			cmds[i] = markStaleScript.Eval(ctx, p, []string{EntryKey(k)}, at.UnixMilli(), FillChannel, k.String(), dashcache.StaleFor.Milliseconds())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("marking reports stale: %w", err)
	}
	var marked []dashcache.ReportKey
	for i, c := range cmds {
		if n, _ := c.Int(); n == 1 {
			marked = append(marked, keys[i])
		}
	}
	return marked, nil
}

// RecordReads remembers when each report was last read (a batch of a
// process's reads), and forgets reads older than dashcache.ReadsKept and past the
// latest MaxReadsKept of a customer.
func (x *Index) RecordReads(ctx context.Context, reads map[dashcache.ReportKey]time.Time) error {
	if len(reads) == 0 {
		return nil
	}
	byCustomer := map[string][]redis.Z{}
	var latest time.Time
	for k, at := range reads {
		byCustomer[k.Customer] = append(byCustomer[k.Customer], scored(at, rangeMember(k)))
		if at.After(latest) {
			latest = at
		}
	}
	_, err := x.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for customer, zs := range byCustomer {
			addTrimmed(ctx, p, readsKey(customer), latest.Add(-dashcache.ReadsKept), dashcache.ReadsKept, zs...)
			p.ZRemRangeByRank(ctx, readsKey(customer), 0, -MaxReadsKept-1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording reads: %w", err)
	}
	return nil
}

// ReadSince returns the customer's reports read since since.
func (x *Index) ReadSince(ctx context.Context, customer string, since time.Time) ([]dashcache.ReportKey, error) {
	members, err := x.rdb.ZRangeByScore(ctx, readsKey(customer), &redis.ZRangeBy{Min: unixMilli(since), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the reads of %s: %w", customer, err)
	}
	return keysOf(customer, members), nil
}

// changesKept is how long a data change is remembered for the fills that
// were running when it was announced: longer than any fill runs.
const changesKept = time.Hour

// RecordChange remembers that the data of ch's customers (nil: of every
// customer) and reports changed on the days ch.From..ch.To, announced at
// at, so that a fill whose call began before then marks its report stale
// (ChangedSince). A change of every report is logged as a range alone
// ("from|to"), one of named reports as a range of each ("report|from|to").
func (x *Index) RecordChange(ctx context.Context, ch dashcache.Changed, at time.Time) error {
	keys := []string{allChangesKey}
	if ch.Customers != nil {
		keys = keys[:0]
		for _, c := range ch.Customers {
			keys = append(keys, changesKey(c))
		}
	}
	members := []redis.Z{scored(at, rangeMember(dashcache.ReportKey{From: ch.From, To: ch.To}))}
	if ch.Reports != nil {
		members = members[:0]
		for _, report := range ch.Reports {
			members = append(members, scored(at, rangeMember(dashcache.ReportKey{Report: report, From: ch.From, To: ch.To})))
		}
	}
	_, err := x.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, key := range keys {
			addTrimmed(ctx, p, key, at.Add(-changesKept), changesKept, members...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording the change: %w", err)
	}
	return nil
}

// ChangedSince reports whether a change of data that the report covers was
// announced at or after since (RecordChange).
func (x *Index) ChangedSince(ctx context.Context, k dashcache.ReportKey, since time.Time) (bool, error) {
	by := &redis.ZRangeBy{Min: unixMilli(since), Max: "+inf"}
	var cmds []*redis.StringSliceCmd
	_, err := x.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		cmds = []*redis.StringSliceCmd{p.ZRangeByScore(ctx, changesKey(k.Customer), by), p.ZRangeByScore(ctx, allChangesKey, by)}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading the changes of %s: %w", k.Customer, err)
	}
	for _, c := range cmds {
		for _, changed := range keysOf(k.Customer, c.Val()) {
			ch := dashcache.Changed{From: changed.From, To: changed.To} // of every report
			if changed.Report != "" {
				ch.Reports = []string{changed.Report}
			}
			if ch.Overlaps(k) {
				return true, nil
			}
		}
	}
	return false, nil
}
