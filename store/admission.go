package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
)

// Admit counts a reader's fill of a report as outstanding for its customer,
// unless the customer has limit fills outstanding already (admitted is then
// false). A report already outstanding is always admitted. An admitted fill
// counts until EndAdmitted, or for ttl should its task never end.
func (g *GuardState) Admit(ctx context.Context, k dashcache.ReportKey, limit int, ttl time.Duration) (admitted bool, err error) {
	n, err := takeSlotScript.Run(ctx, g.rdb, []string{pendingKey(k.Customer)}, k.String(), limit, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("admitting a fill of %s: %w", k, err)
	}
	return n == 1, nil
}

// EndAdmitted ends the count of a report's admitted fill: its task ended.
func (g *GuardState) EndAdmitted(ctx context.Context, k dashcache.ReportKey) error {
	if err := g.rdb.ZRem(ctx, pendingKey(k.Customer), k.String()).Err(); err != nil {
		return fmt.Errorf("ending the fill of %s: %w", k, err)
	}
	return nil
}
