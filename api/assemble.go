package api

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/store"
)

// assemble returns the answer for k, a range of a partitioned report, from
// found, what is cached of its months: computed when the first month was,
// fresh until the first month stops being, stale while one of them is. If
// months are missing (absent, corrupt, past the stale window, or lacking
// days of k's range: a month filled before its last days were over), it
// returns their indexes instead, to be filled; size is the answer's entry's
// length. An error says why the months cannot be assembled.
func (s *Server) assemble(k dashcache.ReportKey, part *dashcache.Partition, months []dashcache.ReportKey, found []store.Found, now time.Time) (rep *report, missing []int, size int, err error) {
	data := make([][]byte, len(months))
	ms := make([]month, len(months))
	for i, f := range found {
		var ok bool
		if data[i], ms[i], ok = s.monthOf(k, months[i], f.Entry, now); !ok {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		return nil, missing, 0, nil
	}
	answer, err := part.Assemble(k, data)
	if err != nil {
		s.cfg.Log.Warn().Err(err).Str("key", k.String()).Msg("assembling a partitioned report")
		return nil, nil, 0, fmt.Errorf("report %s cannot be assembled from its months: %v", k, err)
	}
	computedAt, freshUntil, computeTime := ms[0].computedAt, ms[0].freshUntil, ms[0].computeTime
	for _, m := range ms[1:] {
		computedAt, freshUntil, computeTime = minTime(computedAt, m.computedAt), minTime(freshUntil, m.freshUntil), max(computeTime, m.computeTime)
	}
	raw := store.NewEntry(k, answer, computedAt, computeTime, freshUntil.Sub(computedAt))
	e, err := store.ParseEntry(string(raw))
	if err != nil {
		return nil, nil, 0, fmt.Errorf("report %s: %w", k, err) // cannot happen: NewEntry's own
	}
	rep = newReport(k, e)
	rep.months = ms
	return rep, nil, len(raw), nil
}

// monthOf returns the answer of month m, read for k from its cached entry
// raw, and what a read needs to refresh it; ok is false if it cannot serve
// k (see assemble).
func (s *Server) monthOf(k, m dashcache.ReportKey, raw string, now time.Time) (data []byte, _ month, ok bool) {
	if raw == "" {
		return nil, month{}, false
	}
	e, err := store.ParseEntry(raw)
	var body string
	if err == nil {
		body, err = e.JSON()
	}
	var envelope struct {
		To   string          `json:"to"`
		Data json.RawMessage `json:"data"`
	}
	if err == nil {
		err = json.Unmarshal([]byte(body), &envelope)
	}
	if err != nil {
		s.cfg.Log.Warn().Err(err).Str("key", m.String()).Msg("corrupt cache entry; refilling it")
		return nil, month{}, false
	}
	// The days up to to are in it (a month is asked up to the day it is
	// filled): a read of later days waits for its refill.
	to, _ := dashcache.ParseDay(envelope.To)
	if to < min(k.To, m.To) || !now.Before(e.FreshUntil.Add(dashcache.StaleFor)) {
		return nil, month{}, false
	}
	return envelope.Data, month{key: m, computedAt: e.ComputedAt, freshUntil: e.FreshUntil, computeTime: e.ComputeTime}, true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
