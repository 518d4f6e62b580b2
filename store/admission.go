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
// counts until FillDone, or for ttl should its task never end.
func (s *Store) Admit(ctx context.Context, k dashcache.ReportKey, limit int, ttl time.Duration) (admitted bool, err error) {
	n, err := takeSlotScript.Run(ctx, s.rdb, []string{pendingKey(k.Customer)}, k.String(), limit, ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("admitting a fill of %s: %w", k, err)
	}
	return n == 1, nil
}

// FillDone ends the count of a report's admitted fill.
func (s *Store) FillDone(ctx context.Context, k dashcache.ReportKey) error {
	if err := s.rdb.ZRem(ctx, pendingKey(k.Customer), k.String()).Err(); err != nil {
		return fmt.Errorf("ending the fill of %s: %w", k, err)
	}
	return nil
}
