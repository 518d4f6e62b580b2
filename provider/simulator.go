package provider

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dashcache/dashcache"
)

// Defaults of SimConfig.
const (
	// DefaultSimMinLatency is the shortest simulated query by default.
	DefaultSimMinLatency = 2 * time.Second
	// DefaultSimMaxLatency is the longest simulated query by default.
	DefaultSimMaxLatency = 5 * time.Second
)

// SimConfig configures a Simulator.
type SimConfig struct {
	// MinLatency and MaxLatency bound the time one query takes, drawn
	// uniformly. Both zero: 2s and 5s, like the real platform. A negative
	// value counts as zero, so MaxLatency: -1 answers at once. MaxLatency
	// below MinLatency is raised to it.
	MinLatency, MaxLatency time.Duration
	// Token, when set, is the bearer token that Handler requires; a request
	// without it gets 401. Default: unset, no check. Query ignores it.
	Token string
	// Customers are the names that Customers and GET /customers return.
	// Default: acme, globex, initech.
	Customers []string
	// Fail, when set, is asked before each query. It returns 0 for normal
	// behaviour, or the HTTP status to fail the query with (429, another 4xx
	// or a 5xx; any other status counts as 500) and, for 429, the
	// Retry-After to announce (0: 1s). A failed query answers at once.
	// Default: unset, never fail.
	Fail func(key dashcache.ReportKey) (status int, retryAfter time.Duration)
}

// Simulator is a stand-in BI platform: it answers queries after a realistic
// delay with a report derived only from the key, so the same key always gives
// the same bytes. It counts the queries it receives, as a real platform's
// billing would. It is safe for concurrent use.
type Simulator struct {
	cfg   SimConfig
	calls atomic.Int64
}

// NewSimulator returns a Simulator for cfg, with defaults for zero fields.
func NewSimulator(cfg SimConfig) *Simulator {
	if cfg.MinLatency == 0 && cfg.MaxLatency == 0 {
		cfg.MinLatency, cfg.MaxLatency = DefaultSimMinLatency, DefaultSimMaxLatency
	}
	cfg.MinLatency = max(cfg.MinLatency, 0)
	cfg.MaxLatency = max(cfg.MaxLatency, cfg.MinLatency)
	if len(cfg.Customers) == 0 {
		cfg.Customers = []string{"acme", "globex", "initech"}
	}
	cfg.Customers = slices.Clone(cfg.Customers)
	return &Simulator{cfg: cfg}
}

// Calls returns how many queries the Simulator has started: calls of Query,
// including those that failed or were cancelled, and through it every valid
// POST /query. Requests rejected with 400, 401 or 405 are not counted.
func (s *Simulator) Calls() int64 { return s.calls.Load() }

// Latency returns the bounds that one query's latency is drawn from.
func (s *Simulator) Latency() (minLatency, maxLatency time.Duration) {
	return s.cfg.MinLatency, s.cfg.MaxLatency
}

// Customers returns the configured customer names.
func (s *Simulator) Customers(ctx context.Context) ([]string, error) {
	return slices.Clone(s.cfg.Customers), nil
}

// Query counts the call, then answers as the BI platform would: the failure
// chosen by SimConfig.Fail at once, else the report after a random latency.
// If ctx ends first, it returns a transient *dashcache.ProviderError wrapping
// ctx's error.
func (s *Simulator) Query(ctx context.Context, key dashcache.ReportKey) ([]byte, error) {
	s.calls.Add(1)
	if s.cfg.Fail != nil {
		if status, retryAfter := s.cfg.Fail(key); status != 0 {
			return nil, simulatedFailure(status, retryAfter)
		}
	}
	if err := sleep(ctx, s.latency()); err != nil {
		return nil, transient(0, fmt.Errorf("simulated query for %s: %w", key, err))
	}
	return simReport(key), nil
}

// ParseLatency reads a simulated latency written as one duration ("3s",
// "0s") or a range ("2s-5s"), as DASHCACHE_SIM_LATENCY takes it, and returns
// it as SimConfig's MinLatency and MaxLatency: "0s", where zero would mean the
// default, comes back as MaxLatency -1, an instant answer.
func ParseLatency(s string) (minLatency, maxLatency time.Duration, err error) {
	lo, hi, found := strings.Cut(s, "-")
	if !found {
		hi = lo
	}
	minLatency, err1 := time.ParseDuration(lo)
	maxLatency, err2 := time.ParseDuration(hi)
	if err1 != nil || err2 != nil || minLatency < 0 || maxLatency < minLatency {
		return 0, 0, fmt.Errorf("want a duration (3s) or a range (2s-5s), got %q", s)
	}
	if maxLatency == 0 {
		maxLatency = -1
	}
	return minLatency, maxLatency, nil
}

func (s *Simulator) latency() time.Duration {
	lo, hi := s.cfg.MinLatency, s.cfg.MaxLatency
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}

// simulatedFailure is the error of a query failed on purpose with status. A
// status that is not an error status becomes 500.
func simulatedFailure(status int, retryAfter time.Duration) *dashcache.ProviderError {
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	pe := &dashcache.ProviderError{
		Outcome: dashcache.OutcomeTransient,
		Status:  status,
		Err:     fmt.Errorf("simulated failure: %d %s", status, http.StatusText(status)),
	}
	switch {
	case status == http.StatusTooManyRequests:
		pe.Outcome = dashcache.OutcomeRateLimited
		pe.RetryAfter = cmp.Or(max(retryAfter, 0), DefaultRetryAfter)
	case status >= 400 && status < 500:
		pe.Outcome = dashcache.OutcomePermanent
	}
	return pe
}

// The report a Simulator returns: revenue in cents, so that a range's
// totals are exactly the sums of its days' (dashcache.SimulatorPartition
// assembles ranges from months).
type (
	simReportJSON struct {
		Customer string       `json:"customer"`
		From     string       `json:"from"`
		To       string       `json:"to"`
		Days     int          `json:"days"`
		Revenue  int64        `json:"revenue"`
		Orders   int64        `json:"orders"`
		Series   []simDayJSON `json:"series"`
	}
	simDayJSON struct {
		Date    string `json:"date"`
		Revenue int64  `json:"revenue"`
		Orders  int64  `json:"orders"`
	}
)

// simReport derives a report from key alone. Each day's numbers depend only on
// the customer and the date, so overlapping ranges agree, like real data.
func simReport(key dashcache.ReportKey) []byte {
	r := simReportJSON{
		Customer: key.Customer,
		From:     key.From.String(),
		To:       key.To.String(),
		Series:   []simDayJSON{},
	}
	for d := key.From; d <= key.To; d++ {
		date := d.String()
		h := fnv.New64a()
		h.Write([]byte(key.Customer + "|" + date))
		rng := rand.New(rand.NewPCG(h.Sum64(), 0x5eed))
		orders := 5 + rng.Int64N(200)
		dayCents := orders * (1500 + rng.Int64N(8500)) // 15.00-99.99 per order
		r.Series = append(r.Series, simDayJSON{Date: date, Revenue: dayCents, Orders: orders})
		r.Orders += orders
		r.Revenue += dayCents
	}
	r.Days = len(r.Series)
	b, err := json.Marshal(r)
	if err != nil {
		panic("provider: encoding a simulated report: " + err.Error()) // cannot happen: plain types
	}
	return b
}

// Handler serves the provider contract over HTTP: POST /query and
// GET /customers, with the bearer token check when SimConfig.Token is set.
// Its answers to bad requests (400, 401) and failed queries are JSON objects
// {"error": "..."}; unknown paths and methods get net/http's 404 and 405.
func (s *Simulator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /query", s.serveQuery)
	mux.HandleFunc("GET /customers", s.serveCustomers)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+s.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSONError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Simulator) serveQuery(w http.ResponseWriter, r *http.Request) {
	var q queryRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&q); err != nil {
		writeJSONError(w, http.StatusBadRequest, "body must be a JSON object {\"customer\",\"from\",\"to\"}: "+err.Error())
		return
	}
	err := dashcache.CheckCustomer(q.Customer) // no "|": the key below is the default report's
	var key dashcache.ReportKey
	if err == nil {
		key, err = dashcache.ParseCanonical(q.Customer + "|" + q.From + "|" + q.To)
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if ik := r.Header.Get("Idempotency-Key"); ik != "" && ik != key.String() {
		writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("Idempotency-Key %q does not match the body's key %q", ik, key.String()))
		return
	}
	body, err := s.Query(r.Context(), key)
	if err != nil {
		var pe *dashcache.ProviderError
		status := http.StatusServiceUnavailable
		if errors.As(err, &pe) && pe.Status != 0 {
			status = pe.Status
		}
		if pe != nil && pe.RetryAfter > 0 {
			secs := (pe.RetryAfter + time.Second - 1) / time.Second
			w.Header().Set("Retry-After", strconv.FormatInt(int64(secs), 10))
		}
		writeJSONError(w, status, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (s *Simulator) serveCustomers(w http.ResponseWriter, r *http.Request) {
	customers, _ := s.Customers(r.Context())
	b, _ := json.Marshal(customers)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// sleep waits d, or until ctx ends, whose error it then returns.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
