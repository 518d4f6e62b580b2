package api

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
)

// customerUsage is one customer's line in GET /v1/usage.
type customerUsage struct {
	Customer string           `json:"customer"`
	Calls    int64            `json:"calls"`
	Reports  map[string]int64 `json:"reports,omitempty"` // the calls of each named report, among calls
	Refused  map[string]int64 `json:"refused"`           // by reason: pending, budget, breaker
}

// getUsage answers GET /v1/usage: every customer's BI calls today (in the
// service's zone) and the fills refused, by reason.
func (s *Server) getUsage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem(w, http.StatusMethodNotAllowed, "read usage with GET /v1/usage")
		return
	}
	usage, err := s.cfg.Usage.Usage(r.Context())
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	out := struct {
		Date       string          `json:"date"`
		Timezone   string          `json:"timezone"`
		DailyCalls int             `json:"daily_calls"` // the budget; 0: none
		Customers  []customerUsage `json:"customers"`
	}{Date: usage.Day.String(), Timezone: usage.Zone.String(), DailyCalls: usage.DailyCalls, Customers: []customerUsage{}}
	for c, u := range usage.Customers {
		out.Customers = append(out.Customers, customerUsage{Customer: c, Calls: u.Calls, Reports: u.Reports, Refused: u.Refused})
	}
	// The busiest customers first.
	slices.SortFunc(out.Customers, func(a, b customerUsage) int {
		return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.Customer, b.Customer))
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}
