// Package cubetest is a fake Cube REST API for the tests of the Cube back
// end, in package provider and through the service: it checks each
// request's token as Cube does (HS256, signed with the API secret, not
// expired) and, as the queryRewrite the README asks for would, that a
// query's token names the customer its filter reads; it counts what it was
// asked, so that a test counts calls at the far end.
package cubetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Cube's REST endpoints, under its default base path.
const (
	LoadPath = "/cubejs-api/v1/load"
	MetaPath = "/cubejs-api/v1/meta"
)

// Data is the data of a finished answer: numbers as strings, as Cube gives
// them.
const Data = `[{"Orders.createdAt.day":"2025-01-01T00:00:00.000","Orders.count":"3","Orders.total":"12.50"}]`

// Server is Cube's REST API as documented: POST LoadPath with {"query":
// ...}, GET MetaPath, the token in Authorization (alone, or after
// "Bearer "), 403 {"error": "Invalid token"} for a token its secret did not
// sign, that has no exp or has expired. A load's token must also carry a
// customer claim that the query's customer filter (an equals filter in the
// top-level "filters", or in an "and" there) reads: else 403 too.
type Server struct {
	// Secret is Cube's API secret (CUBEJS_API_SECRET).
	Secret string
	// Answer writes the answer to the n-th load accepted (from 1); nil:
	// Finished.
	Answer func(w http.ResponseWriter, n int)

	mu    sync.Mutex
	loads []Load
	metas int
}

// Load is one load request the fake accepted.
type Load struct {
	RequestID string // x-request-id
	Body      string
	Query     map[string]any
	Claims    jwt.MapClaims
}

// Start serves s on a test server, closed when the test ends.
func Start(t testing.TB, s *Server) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

// ServeHTTP answers as Cube would (see Server).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == LoadPath:
	case r.Method == http.MethodGet && r.URL.Path == MetaPath:
	default:
		fail(w, http.StatusNotFound, "Not found")
		return
	}
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), claims,
		func(*jwt.Token) (any, error) { return []byte(s.Secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		fail(w, http.StatusForbidden, "Invalid token")
		return
	}
	if r.URL.Path == MetaPath {
		s.mu.Lock()
		s.metas++
		s.mu.Unlock()
		_, _ = io.WriteString(w, `{"cubes":[{"name":"Orders","type":"cube","measures":[{"name":"Orders.count"},{"name":"Orders.total"}],`+
			`"dimensions":[{"name":"Orders.customer"},{"name":"Orders.createdAt"}],"segments":[]}]}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Query map[string]any `json:"query"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Query == nil {
		fail(w, http.StatusBadRequest, "Query param is required")
		return
	}
	customer, _ := claims["customer"].(string)
	if customer == "" || !readsOnly(req.Query, customer) {
		fail(w, http.StatusForbidden, fmt.Sprintf("the token's customer %q is not the one the query's filter reads", customer))
		return
	}
	s.mu.Lock()
	s.loads = append(s.loads, Load{RequestID: r.Header.Get("X-Request-Id"), Body: string(body), Query: req.Query, Claims: claims})
	n := len(s.loads)
	s.mu.Unlock()
	if s.Answer == nil {
		Finished(w, n)
		return
	}
	s.Answer(w, n)
}

// readsOnly reports whether query has an equals filter of the one value
// customer in its top-level "filters", or in an "and" there.
func readsOnly(query map[string]any, customer string) bool {
	var filtered func(filters []any) bool
	filtered = func(filters []any) bool {
		for _, f := range filters {
			f, _ := f.(map[string]any)
			if and, ok := f["and"].([]any); ok && filtered(and) {
				return true
			}
			values, _ := f["values"].([]any)
			if f["operator"] == "equals" && len(values) == 1 && values[0] == customer {
				return true
			}
		}
		return false
	}
	filters, _ := query["filters"].([]any)
	return filtered(filters)
}

func fail(w http.ResponseWriter, status int, msg string) {
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = w.Write(b)
}

// Loads returns the load requests accepted so far.
func (s *Server) Loads() []Load {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Load(nil), s.loads...)
}

// Metas returns how many meta requests were accepted.
func (s *Server) Metas() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metas
}

// OneCall returns an error unless loads are the requests of one call: at
// least one, each with the first's x-request-id and body (a call asks
// again with the same query while Cube answers "Continue wait").
func OneCall(loads []Load) error {
	if len(loads) == 0 {
		return errors.New("no load request")
	}
	for i, l := range loads {
		if l.RequestID == "" || l.RequestID != loads[0].RequestID {
			return fmt.Errorf("load request %d: x-request-id %q, want the first's %q", i+1, l.RequestID, loads[0].RequestID)
		}
		if l.Body != loads[0].Body {
			return fmt.Errorf("load request %d: body %s, want the first's %s", i+1, l.Body, loads[0].Body)
		}
	}
	return nil
}

// Finished answers a finished query with Data.
func Finished(w http.ResponseWriter, _ int) {
	_, _ = fmt.Fprintf(w, `{"query":{"measures":["Orders.count"]},"data":%s,"annotation":{"measures":{}}}`, Data)
}

// Wait answers "Continue wait": the query is still running.
func Wait(w http.ResponseWriter, _ int) { _, _ = io.WriteString(w, `{"error":"Continue wait"}`) }

// WaitThenData answers "Continue wait" to the first waits loads, then
// Finished.
func WaitThenData(waits int) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, n int) {
		if n <= waits {
			Wait(w, n)
			return
		}
		Finished(w, n)
	}
}
