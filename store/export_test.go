package store

import (
	"math"
	"time"

	"github.com/dashcache/dashcache"
)

// NewEntryUncompressed is NewEntry without compression, to measure what it
// saves.
func NewEntryUncompressed(k dashcache.ReportKey, data []byte, now time.Time, computeTime, ttl time.Duration) []byte {
	return newEntry(k, data, now, computeTime, ttl, math.MaxInt)
}
