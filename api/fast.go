package api

import (
	"context"
	"net/http"
	"time"
	"unsafe"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/tracing"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// readsPath is where reports are read.
const readsPath = "/v1/reports"

// ServeFast serves, on fasthttp, a read that L1 answers: a GET of
// /v1/reports that Auth admits, of a report held in L1, answered as
// the net/http path would answer it (headers, 304, gzip, X-Cache, early and
// stale refreshes, the access log and the read metric), and a report that L1
// kept while Redis is unreachable (served stale), without net/http's
// costs per request. It returns false, having done nothing, for every other
// request (a refusal, a report not in L1, an error): the net/http handler
// serves those (internal/front), and its read from Redis puts the report in
// L1 for the next.
func (s *Server) ServeFast(c *fasthttp.RequestCtx) bool {
	start := time.Now()
	if !c.IsGet() {
		return false
	}
	report, ok := s.reportAt(transient(c.URI().PathOriginal()))
	if !ok {
		return false
	}
	req := &c.Request.Header
	acc, ok := s.auth.admitsRead(transient(c.Host()), transient(req.Peek("Authorization")), func() string { return c.RemoteIP().String() })
	if !ok {
		return false
	}
	query := transient(c.URI().QueryString())
	k, _, err := s.parseQuery(report, query)
	if err != nil || !acc.allows(k.Customer) {
		return false
	}
	now := s.cfg.Now()
	result := ""
	rep := s.l1.get(k, now)
	if rep == nil {
		if !s.l1.redisDown() {
			return false
		}
		if rep = s.l1.kept(k, now); rep == nil {
			return false
		}
		result = resultStaleIfError // Redis is unreachable: no refresh
	}
	a, ok := s.answerFor(rep, transient(req.Peek("Accept-Encoding")), transient(req.Peek("If-None-Match")))
	if !ok {
		return false
	}
	s.reads.record(rep.key, nil, rep, now) // not k: its strings are fasthttp's, reused after the request
	if result == "" {
		result = s.freshness(rep, now)
	}
	h := &c.Response.Header
	h.Set("X-Content-Type-Options", nosniff[0])
	rep.headers(&a, result, now, func(name string, value []string) { h.Set(name, value[0]) })
	c.SetStatusCode(a.status)
	if a.status == http.StatusOK {
		c.SetBodyString(a.body)
	}
	s.metrics.read(rep.key.Report, result)
	xcache, reason := xcacheValues[result][0], ""
	if result == resultStaleIfError {
		reason = reasonRedisUnavailable
	}
	log := s.cfg.Log
	if s.tracer != nil {
		log = s.traceFast(c, start, rep.key, a.status, xcache)
	}
	logRequest(log, http.MethodGet, transient(c.URI().PathOriginal()), query, transient(c.UserAgent()), a.status, len(a.body), xcache, reason, time.Since(start))
	return true
}

// traceFast records the span of a read that ServeFast answered, as
// otelhttp records one on the net/http path: a server span named by the
// route, a child of the caller's trace context, if any. It returns the
// access log with the span's IDs.
func (s *Server) traceFast(c *fasthttp.RequestCtx, start time.Time, k dashcache.ReportKey, status int, xcache string) zerolog.Logger {
	ctx := tracing.Propagator().Extract(context.Background(), fastHeaders{&c.Request.Header})
	path := readsPath
	if k.Report != "" {
		path = readsPath + "/{name}"
	}
	ctx, span := s.tracer.Start(ctx, http.MethodGet+" "+path, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(
			attribute.String("http.request.method", http.MethodGet),
			attribute.String("http.route", path),
			attribute.Int("http.response.status_code", status),
			attribute.String("dashcache.report", k.Report),
			attribute.String("dashcache.x_cache", xcache),
		))
	span.End()
	return tracing.Log(ctx, s.cfg.Log)
}

// fastHeaders reads a fasthttp request's headers for a propagator.
type fastHeaders struct{ h *fasthttp.RequestHeader }

func (f fastHeaders) Get(key string) string { return string(f.h.Peek(key)) }
func (f fastHeaders) Set(string, string)    {}
func (f fastHeaders) Keys() []string        { return nil }

// transient is b as a string without a copy, for a request's bytes that
// fasthttp reuses after the request: it must not outlive the call it is
// passed to.
func transient(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
