package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// handOverKept bounds how long an answer to HandOverReads is kept, should
// its asker be gone.
const handOverKept = time.Minute

// HandOverReads asks every API process subscribed with a HandOver listener
// to hand the reads it saw over to the index, and waits until each has
// answered or wait has passed. It returns how many were asked and how many
// answered: an invalidation then sees the reads of every process that did,
// however lately they were seen.
func (c *Cache) HandOverReads(ctx context.Context, wait time.Duration) (asked, answered int, err error) {
	token := newToken()
	// PUBLISH counts the subscribers of the node it reaches; on a cluster,
	// go-redis sends it to any node, so it goes to the one of the channel's
	// slot, where every subscription is (see handOverChannel).
	var pub redis.Cmdable = c.rdb
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		if pub, err = cc.MasterForKey(ctx, c.handOver); err != nil {
			return 0, 0, fmt.Errorf("asking the API processes for their reads: %w", err)
		}
	}
	n, err := pub.Publish(ctx, c.handOver, token).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("asking the API processes for their reads: %w", err)
	}
	asked = int(n)
	key := handOverReplyKey(token)
	defer c.rdb.Del(context.WithoutCancel(ctx), key)
	for deadline := time.Now().Add(wait); answered < asked; {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		// BLPOP counts whole seconds: a wait under one takes one.
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
