package api

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
)

// report is a cached entry ready to be served: the header values that do not
// change with time are built once, when it is read from Redis, and those
// that do (Age, Cache-Control) once a second, so that a hit from L1 builds
// none. It is safe for concurrent use.
type report struct {
	store.Entry
	key            dashcache.ReportKey // its strings the report's own
	etag, gzipETag []string            // one value each, as http.Header holds them
	length         []string            // of Body
	clock          atomic.Pointer[clockHeaders]
	// json is the body decompressed (nil until a client that does not
	// accept gzip asks for it): it is then charged to L1, and kept.
	json atomic.Pointer[plainBody]
	// lastRead is when a read of this report (held in L1) was last
	// recorded, in Unix ms: reads of it within readResolution after that
	// cost an atomic load, no map lookup.
	lastRead atomic.Int64
	// months are the months an answer of a partitioned report was
	// assembled from (nil for any other report).
	months []month
}

// month is a cached month of a partitioned report, as an answer assembled
// from it needs it: to refresh it when it is stale, or early.
type month struct {
	key         dashcache.ReportKey
	computedAt  time.Time
	freshUntil  time.Time
	computeTime time.Duration
}

// plainBody is a compressed report's JSON and its length.
type plainBody struct {
	body   string
	length []string
}

// clockHeaders are the Age and Cache-Control of a report at one second.
type clockHeaders struct {
	second       int64
	age, control []string
}

func newReport(k dashcache.ReportKey, e store.Entry) *report {
	r := &report{Entry: e, key: k, etag: []string{e.ETag}, length: []string{strconv.Itoa(len(e.Body))}}
	if e.Gzip {
		r.gzipETag = []string{e.GzipETag}
	}
	return r
}

// clockAt returns the report's Age and Cache-Control at now.
func (r *report) clockAt(now time.Time) *clockHeaders {
	sec := now.Unix()
	if c := r.clock.Load(); c != nil && c.second == sec {
		return c
	}
	c := &clockHeaders{
		second:  sec,
		age:     []string{strconv.FormatInt(int64(max(now.Sub(r.ComputedAt), 0)/time.Second), 10)},
		control: []string{"private, max-age=" + strconv.FormatInt(int64(max(r.FreshUntil.Sub(now), 0)/time.Second), 10)},
	}
	r.clock.Store(c)
	return c
}

// The header values every answer of a report carries, or of a compressed
// one (shared, never written to).
var (
	jsonType     = []string{"application/json"}
	gzipEncoding = []string{"gzip"}
	varyEncoding = []string{"Accept-Encoding"}
	xcacheValues = map[string][]string{resultHit: {resultHit}, resultMiss: {resultMiss}, resultStale: {resultStale}, resultStaleIfError: {resultStale}}
	// A report served stale because Redis is unreachable says so, and may
	// not be kept by the client: it may be older than Redis's.
	redisUnavailable = []string{reasonRedisUnavailable}
	noFreshness      = []string{"private, max-age=0"}
)

// reasonRedisUnavailable is the X-Cache-Reason of a report served stale
// because Redis is unreachable (stale-if-error).
const reasonRedisUnavailable = "redis-unavailable"

// headers calls set with each header of an answer a of r with result (hit,
// miss, stale or stale_if_error) at now, but Content-Length; the values are
// shared, never to be written to. A 304 has no Content-Type (net/http would
// drop it).
func (r *report) headers(a *answer, result string, now time.Time, set func(name string, value []string)) {
	c := r.clockAt(now)
	if a.status == http.StatusOK {
		set("Content-Type", jsonType)
	}
	set("X-Cache", xcacheValues[result])
	set("Etag", a.etag)
	set("Age", c.age)
	if result == resultStaleIfError {
		set("X-Cache-Reason", redisUnavailable)
		set("Cache-Control", noFreshness)
	} else {
		set("Cache-Control", c.control)
	}
	if r.Gzip {
		set("Vary", varyEncoding)
	}
	if a.gzip && a.status == http.StatusOK {
		set("Content-Encoding", gzipEncoding)
	}
}
