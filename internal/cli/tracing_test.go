package cli

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dashcache/dashcache/internal/redistest"
	"github.com/dashcache/dashcache/internal/wait"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP endpoint (POST /v1/traces, protobuf) that
// keeps the spans exported to it.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body := io.Reader(req.Body)
		if req.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		data, err := io.ReadAll(body)
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(data, &export)
		}
		if req.URL.Path != "/v1/traces" || err != nil {
			t.Errorf("OTLP receiver: %s %s: %v", req.Method, req.URL.Path, err)
			http.Error(w, "bad export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		for _, rs := range export.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(r.Close)
	return r
}

// named returns the spans received whose name is name.
func (r *otlpReceiver) named(name string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// childrenOf returns the spans received whose parent is span.
func (r *otlpReceiver) childrenOf(span *tracepb.Span) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if bytes.Equal(s.TraceId, span.TraceId) && bytes.Equal(s.ParentSpanId, span.SpanId) {
			out = append(out, s)
		}
	}
	return out
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.GetStringValue()
		}
	}
	return ""
}

// TestTraces: with OTEL_EXPORTER_OTLP_ENDPOINT set, 3 concurrent readers of
// one uncached report make 3 request spans, each in a trace of its own, and
// the worker one fill span in a trace of its own, joined to all 3 by links:
// the fill links to the trace whose enqueue it took, and each reader's span
// to the fill that woke it. The fill's children are the lock, the guard
// (whose child is the BI call, naming its back end) and the fenced write;
// its Redis commands are traced, without their arguments; its log lines
// carry its trace ID. A hit served from L1 on the fasthttp path is a span
// in its caller's trace. The spans are those an in-process OTLP/HTTP
// receiver decoded.
func TestTraces(t *testing.T) {
	recv := newOTLPReceiver(t)
	// The SDK reads these from the process's environment; the binary's
	// settings (getenv) decide that tracing is on.
	otel := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": recv.URL,
		"OTEL_TRACES_SAMPLER":         "always_on",
		"OTEL_BSP_SCHEDULE_DELAY":     "50", // ms between exports
	}
	for k, v := range otel {
		t.Setenv(k, v)
	}
	bi := newBIServer(t, 300*time.Millisecond, "")
	env := map[string]string{
		"DASHCACHE_REDIS_URL":    redistest.URL(t),
		"DASHCACHE_LISTEN":       "127.0.0.1:0",
		"DASHCACHE_PROVIDER_URL": bi.URL,
	}
	for k, v := range otel {
		env[k] = v
	}
	var logMu sync.Mutex
	var workerLog []string
	startRoleLogging(t, "worker", env, func(line string) {
		logMu.Lock()
		defer logMu.Unlock()
		workerLog = append(workerLog, line)
	})
	api := startRole(t, "api", env)

	var readers sync.WaitGroup
	for range 3 {
		readers.Go(func() {
			if r := getPath(t, api, "/v1/reports", "acme", "2025-01-01", "2025-01-31", "20s"); r.status != http.StatusOK {
				t.Errorf("a reader: %d %s", r.status, r.body)
			}
		})
	}
	readers.Wait()
	if n := bi.calls.Load(); n != 1 {
		t.Fatalf("%d BI calls, want 1", n)
	}
	wait.For(t, "3 request spans and the fill's to be exported", 10*time.Second, func() bool {
		return len(recv.named("GET /v1/reports")) == 3 && len(recv.named("fill")) == 1 && len(recv.named("fenced write")) == 1
	})

	fill := recv.named("fill")[0]
	fillTrace := hex.EncodeToString(fill.TraceId)
	joined := map[string]bool{} // reader traces joined to the fill by a link
	for _, l := range fill.Links {
		joined[hex.EncodeToString(l.TraceId)] = true
	}
	if len(fill.Links) != 1 {
		t.Errorf("the fill links to %d traces, want the one whose enqueue it took", len(fill.Links))
	}
	traces := map[string]bool{}
	for _, s := range recv.named("GET /v1/reports") {
		id := hex.EncodeToString(s.TraceId)
		traces[id] = true
		if id == fillTrace {
			t.Errorf("a reader's span is in the fill's trace: the fill must have a trace of its own")
		}
		for _, l := range s.Links {
			if bytes.Equal(l.TraceId, fill.TraceId) && bytes.Equal(l.SpanId, fill.SpanId) {
				joined[id] = true
			}
		}
	}
	if len(traces) != 3 {
		t.Errorf("the readers' spans are in %d traces, want 3", len(traces))
	}
	for id := range traces {
		if !joined[id] {
			t.Errorf("reader trace %s is not joined to the fill by a link", id)
		}
	}

	children := map[string]*tracepb.Span{}
	for _, c := range recv.childrenOf(fill) {
		children[c.Name] = c
	}
	for _, name := range []string{"lock", "guard", "fenced write"} {
		if children[name] == nil {
			t.Errorf("the fill has no %q child (it has %v)", name, children)
		}
	}
	if g := children["guard"]; g != nil {
		var calls []*tracepb.Span // the rest are the guard's Redis commands
		for _, c := range recv.childrenOf(g) {
			if c.Name == "bi call" {
				calls = append(calls, c)
			}
		}
		if len(calls) != 1 || attr(calls[0], "dashcache.backend") != "default" {
			t.Errorf("the guard's BI calls: %v, want one naming its back end", calls)
		}
	}
	redisSpans := 0
	recv.mu.Lock()
	for _, s := range recv.spans {
		if bytes.Equal(s.TraceId, fill.TraceId) && attr(s, "db.system") == "redis" {
			redisSpans++
			if attr(s, "db.statement") != "" {
				t.Errorf("a Redis span shows the command's arguments: %s", attr(s, "db.statement"))
			}
		}
	}
	recv.mu.Unlock()
	if redisSpans == 0 {
		t.Error("no Redis command is traced in the fill's trace")
	}

	// A hit from L1, on the fasthttp path, is a span too, in the caller's
	// trace. (The read before it, from Redis, puts the report in L1.)
	getPath(t, api, "/v1/reports", "acme", "2025-01-01", "2025-01-31", "0s")
	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest(http.MethodGet, "http://"+api+"/v1/reports?customer=acme&from=2025-01-01&to=2025-01-31", nil)
	req.Header.Set("traceparent", "00-"+caller+"-00f067aa0ba902b7-01")
	resp, err := readClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Cache") != "hit" {
		t.Fatalf("the fourth read: X-Cache %q, want a hit", resp.Header.Get("X-Cache"))
	}
	wait.For(t, "the hit's span", 10*time.Second, func() bool {
		for _, s := range recv.named("GET /v1/reports") {
			if hex.EncodeToString(s.TraceId) == caller && attr(s, "dashcache.x_cache") == "hit" && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
				return true
			}
		}
		return false
	})

	var filled string // the worker's log is written out every 100 ms
	wait.For(t, "the fill's log line", 5*time.Second, func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		for _, line := range workerLog {
			if strings.Contains(line, `"message":"report filled"`) {
				filled = line
			}
		}
		return filled != ""
	})
	if !strings.Contains(filled, `"trace_id":"`+fillTrace+`"`) {
		t.Errorf("the fill's log line does not carry its trace ID %s: %s", fillTrace, filled)
	}
}
