package api

import (
	"encoding/json"
	"net/http"

	"github.com/dashcache/dashcache"
)

type invalidateRequest struct {
	Customers json.RawMessage `json:"customers"` // ["a","b"] or "*"
	Reports   []string        `json:"reports"`   // of the catalogue; none: every report
	From      string          `json:"from"`
	To        string          `json:"to"`
}

const invalidateUsage = `the body must be JSON {"customers":["acme"],"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}, or "customers":"*" for every customer; "reports":[...] limits it to reports of the catalogue`

// postInvalidate makes stale every cached report of the customers that
// covers the changed days, refreshes at once those read within ReadWithin,
// and answers 200 with the counts.
func (s *Server) postInvalidate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		problem(w, http.StatusMethodNotAllowed, "invalidate with POST /v1/invalidate; "+invalidateUsage)
		return
	}
	var req invalidateRequest
	if !decodeBody(w, r, &req, invalidateUsage, `name fewer customers, or "*" for every customer`) {
		return
	}
	var customers []string
	var all string
	if json.Unmarshal(req.Customers, &customers) != nil {
		if json.Unmarshal(req.Customers, &all) != nil || all != dashcache.AllCustomers {
			problem(w, http.StatusBadRequest, invalidateUsage+`: customers must be a list of names or "*"`)
			return
		}
		customers = []string{all}
	}
	ch, err := dashcache.ParseChanged(customers, req.Reports, req.From, req.To, s.today(), s.cfg.Reports)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	// The queue asks every API process for its latest reads: this one's go
	// first, should its subscription be down.
	_ = s.flushReads(r.Context()) // logged
	res, err := s.cfg.Queue.Invalidate(r.Context(), ch, s.cfg.ReadWithin)
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	s.cfg.Log.Info().Strs("customers", customers).Str("from", req.From).Str("to", req.To).
		Int("matched", res.Matched).Int("marked_stale", res.MarkedStale).Int("refreshed", res.Refreshed).
		Int("apis", res.APIs).Int("apis_unanswered", res.APIsUnanswered).
		Msg("invalidated")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}
