package provider

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dashcache/dashcache"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func mustKey(t *testing.T, canonical string) dashcache.ReportKey {
	t.Helper()
	k, err := dashcache.ParseCanonical(canonical)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newTestClient starts h on a test server and returns a client for it.
func newTestClient(t *testing.T, h http.Handler, cfg ClientConfig) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.BaseURL = cmpOr(cfg.BaseURL, srv.URL)
	cfg.HTTPClient = srv.Client()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// asProviderError fails the test unless err is a *dashcache.ProviderError.
func asProviderError(t *testing.T, err error) *dashcache.ProviderError {
	t.Helper()
	var pe *dashcache.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *dashcache.ProviderError", err, err)
	}
	return pe
}

func TestClientQuerySendsContract(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		token     string
		basePath  string
		wantAuth  string
		wantPath  string
		canonical string
	}{
		{"with token", "s3cret", "", "Bearer s3cret", "/query", "acme|2025-01-01|2025-01-31"},
		{"without token", "", "", "", "/query", "acme|2025-01-01|2025-01-31"},
		{"base path with slash", "", "/bi/v1/", "", "/bi/v1/query", "glo.bex_1|2024-02-29|2024-02-29"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := make(chan *http.Request, 1)
			gotBody := make(chan string, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				got <- r
				gotBody <- string(b)
				_, _ = io.WriteString(w, `{"ok":true}`)
			})
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			c, err := NewClient(ClientConfig{BaseURL: srv.URL + tt.basePath, Token: tt.token, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			key := mustKey(t, tt.canonical)
			if _, err := c.Query(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			r := <-got
			if r.Method != http.MethodPost || r.URL.Path != tt.wantPath {
				t.Errorf("request %s %s, want POST %s", r.Method, r.URL.Path, tt.wantPath)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if a := r.Header.Get("Authorization"); a != tt.wantAuth {
				t.Errorf("Authorization %q, want %q", a, tt.wantAuth)
			}
			if ik := r.Header.Get("Idempotency-Key"); ik != key.String() {
				t.Errorf("Idempotency-Key %q, want %q", ik, key.String())
			}
			parts := strings.Split(tt.canonical, "|")
			want := `{"customer":"` + parts[0] + `","from":"` + parts[1] + `","to":"` + parts[2] + `"}`
			if b := <-gotBody; b != want {
				t.Errorf("body %s, want %s", b, want)
			}
		})
	}
}

func TestClientQueryClassifies(t *testing.T) {
	t.Parallel()
	serverDate := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		status      int
		header      map[string]string
		body        string
		maxBody     int64
		wantBody    string // on success
		wantOutcome dashcache.ProviderOutcome
		wantRetry   time.Duration
		wantInErr   string
	}{
		{name: "200 JSON verbatim", status: 200, body: " {\"b\": 1,\n \"a\":[1, 2]} ", wantBody: " {\"b\": 1,\n \"a\":[1, 2]} ", wantOutcome: dashcache.OutcomeOK},
		{name: "200 JSON scalar", status: 200, body: `42`, wantBody: `42`, wantOutcome: dashcache.OutcomeOK},
		{name: "200 body at the limit", status: 200, body: `"0123456789"`, maxBody: 12, wantBody: `"0123456789"`, wantOutcome: dashcache.OutcomeOK},
		{name: "200 body over the limit", status: 200, body: `"01234567890"`, maxBody: 12, wantOutcome: dashcache.OutcomeInvalid, wantInErr: "larger than 12 bytes"},
		{name: "200 invalid JSON", status: 200, body: `{"a":`, wantOutcome: dashcache.OutcomeInvalid, wantInErr: "not valid JSON"},
		{name: "200 invalid UTF-8", status: 200, body: "{\"a\":\"\xff\"}", wantOutcome: dashcache.OutcomeInvalid, wantInErr: "not valid UTF-8"},
		{name: "200 empty", status: 200, body: ``, wantOutcome: dashcache.OutcomeInvalid, wantInErr: "not valid JSON"},
		{name: "202 is not a report", status: 202, body: `{"status":"pending"}`, wantOutcome: dashcache.OutcomeTransient},
		{name: "429 seconds", status: 429, header: map[string]string{"Retry-After": "7"}, wantOutcome: dashcache.OutcomeRateLimited, wantRetry: 7 * time.Second},
		{name: "429 HTTP-date", status: 429, header: map[string]string{
			"Date":        serverDate.Format(http.TimeFormat),
			"Retry-After": serverDate.Add(30 * time.Second).Format(http.TimeFormat),
		}, wantOutcome: dashcache.OutcomeRateLimited, wantRetry: 30 * time.Second},
		{name: "429 missing", status: 429, wantOutcome: dashcache.OutcomeRateLimited, wantRetry: time.Second},
		{name: "429 bad", status: 429, header: map[string]string{"Retry-After": "soon"}, wantOutcome: dashcache.OutcomeRateLimited, wantRetry: time.Second},
		{name: "500", status: 500, body: "boom", wantOutcome: dashcache.OutcomeTransient, wantInErr: `"boom"`},
		{name: "503", status: 503, wantOutcome: dashcache.OutcomeTransient},
		{name: "400 with snippet", status: 400, body: "unknown\ncustomer", wantOutcome: dashcache.OutcomePermanent, wantInErr: `400 Bad Request: "unknown customer"`},
		{name: "400 with a JSON error", status: 400, body: `{"error":"unknown customer"}`, wantOutcome: dashcache.OutcomePermanent, wantInErr: `400 Bad Request: "unknown customer"`},
		{name: "404", status: 404, wantOutcome: dashcache.OutcomePermanent, wantInErr: "(empty body)"},
		{name: "401 echoing the token", status: 401, body: "bad token s3cret", wantOutcome: dashcache.OutcomePermanent, wantInErr: `"bad token [redacted]"`},
		{name: "403 long body truncated", status: 403, body: strings.Repeat("x", 5000), wantOutcome: dashcache.OutcomePermanent, wantInErr: strings.Repeat("x", snippetLen) + `..."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newTestClient(t, h, ClientConfig{Token: "s3cret", MaxBodyBytes: tt.maxBody})
			body, err := c.Query(context.Background(), mustKey(t, "acme|2025-01-01|2025-01-31"))
			if got := dashcache.Outcome(err); got != tt.wantOutcome {
				t.Fatalf("outcome %s (err %v), want %s", got, err, tt.wantOutcome)
			}
			if err == nil {
				if string(body) != tt.wantBody {
					t.Errorf("body %q, want %q", body, tt.wantBody)
				}
				return
			}
			pe := asProviderError(t, err)
			if pe.Status != tt.status {
				t.Errorf("Status %d, want %d", pe.Status, tt.status)
			}
			if pe.RetryAfter != tt.wantRetry {
				t.Errorf("RetryAfter %s, want %s", pe.RetryAfter, tt.wantRetry)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantInErr)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
}

func TestClientQueryNoAnswer(t *testing.T) {
	t.Parallel()

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select { // never answers in time
			case <-r.Context().Done():
			case <-release:
			}
		})
		c := newTestClient(t, h, ClientConfig{Timeout: 20 * time.Millisecond})
		t.Cleanup(func() { close(release) }) // before the server closes
		_, err := c.Query(context.Background(), mustKey(t, "acme|2025-01-01|2025-01-31"))
		pe := asProviderError(t, err)
		if pe.Outcome != dashcache.OutcomeTransient || pe.Status != 0 || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want transient wrapping context.DeadlineExceeded", err)
		}
		if !strings.Contains(err.Error(), "no answer within 20ms") {
			t.Errorf("error %q does not name the timeout", err)
		}
	})

	t.Run("caller cancelled", func(t *testing.T) {
		t.Parallel()
		c := newTestClient(t, http.NotFoundHandler(), ClientConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.Query(ctx, mustKey(t, "acme|2025-01-01|2025-01-31"))
		if pe := asProviderError(t, err); pe.Outcome != dashcache.OutcomeTransient || !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want transient wrapping context.Canceled", err)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		c, err := NewClient(ClientConfig{BaseURL: url, Token: "s3cret"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Query(context.Background(), mustKey(t, "acme|2025-01-01|2025-01-31"))
		if pe := asProviderError(t, err); pe.Outcome != dashcache.OutcomeTransient || pe.Status != 0 {
			t.Errorf("got %v, want transient without status", err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error %q contains the token", err)
		}
	})
}

func TestClientCustomers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		body        string
		want        []string
		wantOutcome dashcache.ProviderOutcome
	}{
		{"ok", 200, `["acme","globex"]`, []string{"acme", "globex"}, dashcache.OutcomeOK},
		{"empty", 200, `[]`, []string{}, dashcache.OutcomeOK},
		{"not an array", 200, `{"a":1}`, nil, dashcache.OutcomeTransient},
		{"invalid JSON", 200, `[`, nil, dashcache.OutcomeInvalid},
		{"5xx", 502, ``, nil, dashcache.OutcomeTransient},
		{"401", 401, ``, nil, dashcache.OutcomePermanent},
		{"429", 429, ``, nil, dashcache.OutcomeRateLimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.Path != "/customers" || r.Header.Get("Authorization") != "Bearer tok" {
					t.Errorf("request %s %s with Authorization %q", r.Method, r.URL.Path, r.Header.Get("Authorization"))
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newTestClient(t, h, ClientConfig{Token: "tok"})
			got, err := c.Customers(context.Background())
			if o := dashcache.Outcome(err); o != tt.wantOutcome {
				t.Fatalf("outcome %s (err %v), want %s", o, err, tt.wantOutcome)
			}
			if err == nil && strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("customers %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewClientValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     ClientConfig
		wantErr string // "" for success
	}{
		{"http", ClientConfig{BaseURL: "http://bi.internal:8080"}, ""},
		{"https with path", ClientConfig{BaseURL: "https://bi.example.com/api/"}, ""},
		{"missing", ClientConfig{}, "BaseURL is required"},
		{"relative", ClientConfig{BaseURL: "/query"}, "absolute"},
		{"no scheme", ClientConfig{BaseURL: "bi.internal:8080"}, "absolute"},
		{"ftp", ClientConfig{BaseURL: "ftp://bi.internal"}, "absolute"},
		{"no host", ClientConfig{BaseURL: "http://"}, "absolute"},
		{"query", ClientConfig{BaseURL: "http://bi.internal/?a=1"}, "query or fragment"},
		{"unparsable with password", ClientConfig{BaseURL: "http://u:pw@bi internal/%zz", Token: "s3cret"}, "not a valid URL"},
		{"user and password left out", ClientConfig{BaseURL: "ftp://u:pw@bi.internal", Token: "s3cret"}, "ftp://bi.internal\""},
		{"negative timeout", ClientConfig{BaseURL: "http://bi", Timeout: -time.Second}, "Timeout"},
		{"negative max body", ClientConfig{BaseURL: "http://bi", MaxBodyBytes: -1}, "MaxBodyBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.timeout != DefaultTimeout || c.maxBody != DefaultMaxBodyBytes || c.http == nil {
					t.Errorf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("error %q leaks a secret", err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", time.Second},
		{"0", time.Second},
		{"-5", time.Second},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"1.5", time.Second},
		{"soon", time.Second},
		{"99999999999999999999", MaxRetryAfter},
		{"86400", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), time.Second},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// The client and the simulator's handler agree on the contract.
func TestClientAgainstSimulator(t *testing.T) {
	t.Parallel()
	sim := NewSimulator(SimConfig{
		MaxLatency: -1,
		Token:      "tok",
		Fail: func(k dashcache.ReportKey) (int, time.Duration) {
			switch k.Customer {
			case "limited":
				return 429, 3 * time.Second
			case "gone":
				return 404, 0
			case "broken":
				return 503, 0
			}
			return 0, 0
		},
	})
	c := newTestClient(t, sim.Handler(), ClientConfig{Token: "tok"})
	ctx := context.Background()

	key := mustKey(t, "acme|2025-01-01|2025-01-31")
	got, err := c.Query(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := sim.Query(ctx, key)
	if string(got) != string(want) {
		t.Errorf("over HTTP %s, in process %s", got, want)
	}
	if n := sim.Calls(); n != 2 {
		t.Errorf("Calls() = %d, want 2", n)
	}

	for _, tt := range []struct {
		customer  string
		outcome   dashcache.ProviderOutcome
		status    int
		retryAfer time.Duration
	}{
		{"limited", dashcache.OutcomeRateLimited, 429, 3 * time.Second},
		{"gone", dashcache.OutcomePermanent, 404, 0},
		{"broken", dashcache.OutcomeTransient, 503, 0},
	} {
		_, err := c.Query(ctx, mustKey(t, tt.customer+"|2025-01-01|2025-01-02"))
		pe := asProviderError(t, err)
		if pe.Outcome != tt.outcome || pe.Status != tt.status || pe.RetryAfter != tt.retryAfer {
			t.Errorf("%s: got %v, want %s %d %s", tt.customer, err, tt.outcome, tt.status, tt.retryAfer)
		}
	}

	customers, err := c.Customers(ctx)
	if err != nil || strings.Join(customers, ",") != "acme,globex,initech" {
		t.Errorf("Customers() = %q, %v", customers, err)
	}
	var report struct{ Days int }
	if err := json.Unmarshal(got, &report); err != nil || report.Days != 31 {
		t.Errorf("report days %d, err %v", report.Days, err)
	}
}

// TestClientNeverFollowsRedirects: a 3xx is a permanent failure that names
// where it pointed; the host it points to never sees a request, let alone
// the token.
func TestClientNeverFollowsRedirects(t *testing.T) {
	t.Parallel()
	var reached atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Write([]byte(`{"secret":"metadata"}`))
	}))
	defer elsewhere.Close()
	for _, status := range []int{301, 302, 303, 307, 308} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/latest/meta-data", status)
		})
		c := newTestClient(t, h, ClientConfig{Token: "tok-0123456789abcdef"})
		_, err := c.Query(context.Background(), anyKey)
		pe := asProviderError(t, err)
		if pe.Outcome != dashcache.OutcomePermanent || pe.Status != status || !strings.Contains(err.Error(), strings.TrimPrefix(elsewhere.URL, "http://")) ||
			!strings.Contains(err.Error(), "check DASHCACHE_PROVIDER_URL") {
			t.Errorf("%d: %v; want a permanent failure naming the Location host and DASHCACHE_PROVIDER_URL", status, err)
		}
	}
	// A catalogue's back end says where its URL is configured.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, elsewhere.URL, 302) })
	c := newTestClient(t, h, ClientConfig{URLSetting: catalogueURLSetting})
	if _, err := c.Query(context.Background(), anyKey); err == nil || !strings.Contains(err.Error(), "check the back end's url in the report catalogue") {
		t.Errorf("a catalogue back end's redirect: %v; want it to name the catalogue's url", err)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the redirect target was reached %d times", n)
	}
}

var anyKey = dashcache.ReportKey{Customer: "acme", From: dashcache.CivilDay(2025, 1, 1), To: dashcache.CivilDay(2025, 1, 31)}
