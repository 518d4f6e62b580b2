package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/dashcache/dashcache"
)

// MaxAdminBody bounds the body of POST /v1/warm and POST /v1/invalidate (and
// the api role bounds every request's body by it).
const MaxAdminBody = 64 << 10

type warmRequest struct {
	Customers []string `json:"customers"`
	Reports   []string `json:"reports"`
	Ranges    []string `json:"ranges"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	Force     bool     `json:"force"`
}

type warmResult struct {
	Key    string `json:"key"`
	Result string `json:"result"`           // enqueued | duplicate | skipped
	Detail string `json:"detail,omitempty"` // why it was skipped
}

// postWarm enqueues fill tasks for customers x reports (of the catalogue;
// none: the default report) x ranges (or from..to) on the warming queue and
// answers 202 with what happened to each key.
func (s *Server) postWarm(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		problem(w, http.StatusMethodNotAllowed, `warm with POST /v1/warm and a JSON body {"customers":[...],"ranges":[...]}`)
		return
	}
	var req warmRequest
	if !decodeBody(w, r, &req, `the body must be JSON {"customers":[...],"ranges":[...]} or {"customers":[...],"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}, optionally "reports":[...] and "force":true`, "warm fewer reports at once") {
		return
	}
	today := s.today()
	keys, err := dashcache.WarmKeys(dashcache.WarmRequest{Customers: req.Customers, Reports: req.Reports, Ranges: req.Ranges, From: req.From, To: req.To},
		today, dashcache.Earliest(s.cfg.Earliest, today), s.cfg.Reports)
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	res := dashcache.WarmAll(r.Context(), s.cfg.Queue, keys, dashcache.Refresh{Force: req.Force}, dashcache.StopOnError)
	if len(res.Errors) > 0 {
		s.unavailable(w, r, res.Errors[0])
		return
	}
	out := struct {
		Keys      []warmResult `json:"keys"`
		Enqueued  int          `json:"enqueued"`
		Duplicate int          `json:"duplicate"`
		Skipped   int          `json:"skipped"`
	}{Keys: make([]warmResult, len(res.Keys)), Enqueued: res.Enqueued, Duplicate: res.Duplicates, Skipped: res.Skipped}
	for i, wk := range res.Keys {
		out.Keys[i] = warmResult{Key: wk.Key.String(), Result: wk.Result}
		if wk.Err != nil {
			out.Keys[i].Detail = wk.Err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	json.NewEncoder(w).Encode(out)
}

// decodeBody decodes an admin request's JSON body, of at most MaxAdminBody
// bytes and no unknown fields, into v. If it cannot, it answers 413 (with
// smaller, what to do) or 400 (with usage and the error) and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, usage, smaller string) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooBig):
		problem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes; %s", MaxAdminBody, smaller))
	default:
		problem(w, http.StatusBadRequest, fmt.Sprintf("%s: %v", usage, err))
	}
	return false
}
