package client

import (
	"container/list"
	"sync"
)

// readKey names what Get read: a report (its name; "" the default) of a
// customer over from..to, as given.
type readKey struct {
	report, customer, from, to string
}

// String names the read in errors: "acme 2025-01-01..2025-01-31", after
// "report revenue, " for a named report.
func (k readKey) String() string {
	s := k.customer + " " + k.from + ".." + k.to
	if k.report != "" {
		s = "report " + k.report + ", " + s
	}
	return s
}

// held is a report the client keeps to revalidate: the ETag it was sent
// with and its body (never changed once held: Get returns copies), and the
// bytes it takes.
type held struct {
	key  readKey
	etag string
	body []byte
	size int64
}

// cache holds the reports last read, up to a total of max bytes, the least
// recently read dropped first. It is safe for concurrent use; a nil *cache
// holds nothing.
type cache struct {
	max int64

	mu    sync.Mutex
	size  int64
	order *list.List // of *held, the most recently read first
	items map[readKey]*list.Element
}

func newCache(max int64) *cache {
	if max <= 0 {
		return nil
	}
	return &cache{max: max, order: list.New(), items: map[readKey]*list.Element{}}
}

// get returns the report held for k, or nil, and counts it as read.
func (c *cache) get(k readKey) *held {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.items[k]
	if e == nil {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*held)
}

// put holds h in place of what was held for its key, dropping the least
// recently read reports until the total fits; a report larger than the
// whole cache is not held (and what was held for its key is dropped).
func (c *cache) put(h *held) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.items[h.key]; e != nil {
		c.remove(e)
	}
	if h.size > c.max {
		return
	}
	c.items[h.key] = c.order.PushFront(h)
	c.size += h.size
	for c.size > c.max {
		c.remove(c.order.Back())
	}
}

// remove drops e; c.mu is held.
func (c *cache) remove(e *list.Element) {
	h := c.order.Remove(e).(*held)
	delete(c.items, h.key)
	c.size -= h.size
}
