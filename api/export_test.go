package api

import (
	"time"

	"github.com/dashcache/dashcache"
)

// SetBeforeWait installs a hook that runs between a reader's failed cache check
// and its registration for the fill notification.
func SetBeforeWait(s *Server, fn func(dashcache.ReportKey)) { s.beforeWait = fn }

// Readers returns how many readers share the wait on a canonical key.
func Readers(s *Server, canonical string) int {
	s.waiters.mu.Lock()
	defer s.waiters.mu.Unlock()
	if w := s.waiters.m[canonical]; w != nil {
		return w.readers
	}
	return 0
}

// SetRandom fixes the random numbers that early refresh draws.
func SetRandom(s *Server, fn func() float64) { s.random = fn }

// SetReassertEvery sets how often the readers of one wait enqueue again.
func SetReassertEvery(s *Server, d time.Duration) { s.reassertEvery = d }

// ParseQuery parses a read's query as GET /v1/reports does.
func ParseQuery(s *Server, rawQuery string) (dashcache.ReportKey, time.Duration, error) {
	return s.parseQuery("", rawQuery)
}

// L1Size returns the bytes and the reports the server's L1 holds.
func L1Size(s *Server) (bytes int64, reports int) {
	s.l1.mu.RLock()
	defer s.l1.mu.RUnlock()
	return s.l1.size, len(s.l1.items)
}

// Drops counts the fill notifications (and subscription changes) the
// server's L1 has taken; it does not move without an L1.
func Drops(s *Server) uint64 {
	s.l1.mu.RLock()
	defer s.l1.mu.RUnlock()
	return s.l1.seq
}
