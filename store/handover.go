package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// handOverKept bounds how long an answer to HandOverReads is kept, should
// its asker be gone.
const handOverKept = time.Minute

// HandOverReads asks every API process subscribed with a HandOver listener
// to hand the reads it saw over to the index, and waits until each has
// answered or wait has passed (in whole seconds: BLPOP's). It returns how
// many were asked and how many answered: an invalidation then sees the reads
// of every process that did, however lately they were seen.
func (c *Cache) HandOverReads(ctx context.Context, wait time.Duration) (asked, answered int, err error) {
	token := newToken()
	n, err := c.rdb.Publish(ctx, c.handOver, token).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("asking the API processes for their reads: %w", err)
	}
	asked = int(n)
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		// A message reaches the subscribers of every node, but PUBLISH
		// counts those of the node it was sent to.
		if asked, err = c.subscribers(ctx, cc); err != nil {
			return 0, 0, err
		}
	}
	key := handOverReplyKey(token)
	defer c.rdb.Del(context.WithoutCancel(ctx), key)
	for deadline := time.Now().Add(wait); answered < asked; {
		left := time.Until(deadline).Round(time.Second)
		if left <= 0 {
			break
		}
		err := c.rdb.BLPop(ctx, left, key).Err()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return asked, answered, fmt.Errorf("waiting for the API processes' reads: %w", err)
		default:
			answered++
		}
	}
	return asked, answered, nil
}

// subscribers counts the subscribers of the hand-over channel on every node
// of a cluster.
func (c *Cache) subscribers(ctx context.Context, cc *redis.ClusterClient) (int, error) {
	var mu sync.Mutex
	total := 0
	err := cc.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := node.PubSubNumSub(ctx, c.handOver).Result()
		mu.Lock()
		defer mu.Unlock()
		total += int(n[c.handOver])
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("counting the API processes: %w", err)
	}
	return total, nil
}

// AnswerHandOver tells the invalidation that asked (reply, as the Listener
// was given it) that this process has handed its reads over.
func (c *Cache) AnswerHandOver(ctx context.Context, reply string) error {
	key := handOverReplyKey(reply)
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, key, "1")
		p.Expire(ctx, key, handOverKept)
		return nil
	})
	if err != nil {
		return fmt.Errorf("answering a hand-over of reads: %w", err)
	}
	return nil
}
