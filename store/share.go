package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed take_slot.lua
	takeSlotSrc    string
	takeSlotScript = redis.NewScript(takeSlotSrc)
)

// ErrShareInUse is returned by TakeShare when the customer has its whole
// share of BI calls in flight.
var ErrShareInUse = errors.New("store: the customer's share of BI calls is in use")

// ShareSlot is one of a customer's BI calls in flight. It frees itself when
// its lifetime ends, should its holder die.
type ShareSlot struct {
	g        *GuardState
	customer string
	token    string
}

// ShareFree reports whether the customer has a slot of its share (at most
// share calls in flight across the fleet) free, without taking it.
func (g *GuardState) ShareFree(ctx context.Context, customer string, share int) (bool, error) {
	n, err := takeSlotScript.Run(ctx, g.rdb, []string{inflightKey(customer)}, "", share, 1).Int()
	if err != nil {
		return false, fmt.Errorf("reading the share of %s: %w", customer, err)
	}
	return n == 1, nil
}

// TakeShare takes a slot of the customer's share for at most ttl (longer
// than the call it is for), or returns ErrShareInUse.
func (g *GuardState) TakeShare(ctx context.Context, customer string, share int, ttl time.Duration) (*ShareSlot, error) {
	slot := &ShareSlot{g: g, customer: customer, token: newToken()}
	n, err := takeSlotScript.Run(ctx, g.rdb, []string{inflightKey(customer)}, slot.token, share, ttl.Milliseconds()).Int()
	switch {
	case err != nil:
		return nil, fmt.Errorf("taking a share of %s: %w", customer, err)
	case n == 0:
		return nil, ErrShareInUse
	}
	return slot, nil
}

// Release frees the slot.
func (sl *ShareSlot) Release(ctx context.Context) error {
	if err := sl.g.rdb.ZRem(ctx, inflightKey(sl.customer), sl.token).Err(); err != nil {
		return fmt.Errorf("releasing a share of %s: %w", sl.customer, err)
	}
	return nil
}

// DeferTask records that a task of the customer waits for a slot of its
// share; task is the caller's name for it, handed back by NextDeferred.
func (g *GuardState) DeferTask(ctx context.Context, customer, task string) error {
	key := deferredKey(customer)
	_, err := g.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(time.Now().UnixMilli()), Member: task})
		p.Expire(ctx, key, time.Hour)
		return nil
	})
	if err != nil {
		return fmt.Errorf("deferring a task of %s: %w", customer, err)
	}
	return nil
}

// NextDeferred takes the customer's longest-waiting deferred task off the
// list and returns it, or "" when none waits.
func (g *GuardState) NextDeferred(ctx context.Context, customer string) (string, error) {
	zs, err := g.rdb.ZPopMin(ctx, deferredKey(customer)).Result()
	if err != nil {
		return "", fmt.Errorf("taking a deferred task of %s: %w", customer, err)
	}
	if len(zs) == 0 {
		return "", nil
	}
	task, _ := zs[0].Member.(string)
	return task, nil
}
