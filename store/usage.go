package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/redis/go-redis/v9"
)

var (
	//go:embed spend.lua
	spendSrc    string
	spendScript = redis.NewScript(spendSrc)
)

// usageKept is how long a day's usage is kept: long enough to be read the
// whole day, in any zone.
const usageKept = 48 * time.Hour

// The fields of a day's usage hash: "<customer>:calls",
// "<customer>:calls:<report>" (a named report's share of them) and
// "<customer>:refused_<reason>".
const (
	callsField   = "calls"
	refusedField = "refused_"
)

func usageField(customer, what string) string { return customer + ":" + what }

// Usage is one customer's BI calls on a day, those of each named report
// among them, and the fills refused, by reason (dashcache.ReasonPending,
// ReasonBudget, ReasonBreaker).
type Usage struct {
	Calls   int64
	Reports map[string]int64
	Refused map[string]int64
}

// Spend counts one BI call of the customer for report ("" the default) on
// day against budget (0: none), which spans the customer's reports. ok is
// false, and nothing is counted but the refusal, when the budget is used
// up.
func (g *GuardState) Spend(ctx context.Context, day dashcache.Day, customer, report string, budget int) (ok bool, err error) {
	reportField := ""
	if report != "" {
		reportField = usageField(customer, callsField+":"+report)
	}
	n, err := spendScript.Run(ctx, g.rdb, []string{usageKey(day)}, usageField(customer, callsField), budget, int(usageKept/time.Second),
		usageField(customer, refusedField+dashcache.ReasonBudget), reportField).Int()
	if err != nil {
		return false, fmt.Errorf("counting a BI call of %s: %w", customer, err)
	}
	return n == 1, nil
}

// Calls returns the customer's BI calls on day.
func (g *GuardState) Calls(ctx context.Context, day dashcache.Day, customer string) (int64, error) {
	n, err := g.rdb.HGet(ctx, usageKey(day), usageField(customer, callsField)).Int64()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("reading the BI calls of %s: %w", customer, err)
	}
	return n, nil
}

// CountRefusal counts a refused fill of the customer on day.
func (g *GuardState) CountRefusal(ctx context.Context, day dashcache.Day, customer, reason string) error {
	key := usageKey(day)
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, key, usageField(customer, refusedField+reason), 1)
		p.Expire(ctx, key, usageKept)
		return nil
	})
	if err != nil {
		return fmt.Errorf("counting a refusal of %s: %w", customer, err)
	}
	return nil
}

// UsageOn returns every customer's usage on day.
func (g *GuardState) UsageOn(ctx context.Context, day dashcache.Day) (map[string]Usage, error) {
	fields, err := g.rdb.HGetAll(ctx, usageKey(day)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the usage of %s: %w", day, err)
	}
	out := map[string]Usage{}
	for field, v := range fields {
		customer, what, ok := strings.Cut(field, ":")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			continue
		}
		u := out[customer]
		if reason, refused := strings.CutPrefix(what, refusedField); refused {
			if u.Refused == nil {
				u.Refused = map[string]int64{}
			}
			u.Refused[reason] = n
		} else if report, named := strings.CutPrefix(what, callsField+":"); named {
			if u.Reports == nil {
				u.Reports = map[string]int64{}
			}
			u.Reports[report] = n
		} else if what == callsField {
			u.Calls = n
		}
		out[customer] = u
	}
	return out, nil
}
