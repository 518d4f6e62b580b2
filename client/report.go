package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// How a report was served, as in Report.XCache.
const (
	CacheHit   = "hit"   // from the cache, fresh
	CacheStale = "stale" // from the cache while one refresh runs
	CacheMiss  = "miss"  // this read waited for the report to be computed
)

// Report is a report as the server sent it: the JSON body whole, and its
// fields parsed.
type Report struct {
	// Name is the report's name of the catalogue; "" for the default
	// report.
	Name     string
	Customer string
	// From and To are the range's first and last day, YYYY-MM-DD.
	From, To string
	// ComputedAt is when the BI platform computed the report.
	ComputedAt time.Time
	// Data is the back end's JSON, verbatim (a SQL back end's: an array
	// of its rows). It is part of Body.
	Data json.RawMessage
	// Body is the answer's JSON whole: {"customer", "from", "to",
	// "computed_at", "data"}, a named report's starting with "report".
	Body json.RawMessage
	// XCache is how the server served it: CacheHit, CacheStale or
	// CacheMiss.
	XCache string
	// ETag identifies Body; Get sends it back as If-None-Match.
	ETag string
	// Age is how long ago the report was computed, as the server said.
	Age time.Duration
	// Revalidated is true when the server answered 304 Not Modified: the
	// report is unchanged, and Body is the copy this client kept.
	Revalidated bool
}

// parseReport parses a report's JSON body, which the Report keeps.
func parseReport(body []byte) (*Report, error) {
	var env struct {
		Report     string          `json:"report"`
		Customer   string          `json:"customer"`
		From       string          `json:"from"`
		To         string          `json:"to"`
		ComputedAt time.Time       `json:"computed_at"`
		Data       json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("client: the answer is not a report's JSON: %w", err)
	}
	r := &Report{Name: env.Report, Customer: env.Customer, From: env.From, To: env.To, ComputedAt: env.ComputedAt, Data: env.Data, Body: body}
	// The server writes data last: point Data into Body rather than hold
	// the report's data twice.
	if end := bytes.LastIndexByte(body, '}'); end >= len(env.Data) && bytes.Equal(body[end-len(env.Data):end], env.Data) {
		r.Data = body[end-len(env.Data) : end : end]
	}
	return r, nil
}

// setHeaders sets the fields of r that the answer's header h carries.
func (r *Report) setHeaders(h http.Header) {
	r.XCache = h.Get("X-Cache")
	if etag := h.Get("ETag"); etag != "" {
		r.ETag = etag
	}
	if secs, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && secs > 0 && secs <= math.MaxInt64/int64(time.Second) {
		r.Age = time.Duration(secs) * time.Second
	}
}
