package api

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/dashcache/dashcache/internal/tracing"
	"github.com/rs/zerolog"
)

// maxLogged bounds what the access log copies of a request's path, query
// and user agent: a client must not grow the log at will.
const maxLogged = 512

// nosniff is the value of X-Content-Type-Options on every answer (shared,
// never written to).
var nosniff = []string{"nosniff"}

// accessLog logs one line per request: method, path, query and user agent
// (never other headers, which may carry credentials; each cut to maxLogged
// bytes), status, bytes and duration. Every answer tells browsers not to
// guess its content type.
func accessLog(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		w.Header()["X-Content-Type-Options"] = nosniff
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		var xcache, reason string
		if v := w.Header()["X-Cache"]; len(v) > 0 { // set canonical by serve
			xcache = v[0]
		}
		if v := w.Header()["X-Cache-Reason"]; len(v) > 0 {
			reason = v[0]
		}
		logRequest(tracing.Log(r.Context(), log), r.Method, r.URL.Path, r.URL.RawQuery, r.UserAgent(), rec.status, rec.bytes, xcache, reason, time.Since(start))
	})
}

// logRequest writes a request's line of the access log; reason, the
// X-Cache-Reason of a report served stale because Redis is unreachable, is
// logged when set.
func logRequest(log zerolog.Logger, method, path, query, userAgent string, status, bytes int, xcache, reason string, took time.Duration) {
	e := log.Info().
		Str("method", method).
		Str("path", truncate(path, maxLogged)).
		Str("query", truncate(query, maxLogged)).
		Str("user_agent", truncate(userAgent, maxLogged)).
		Int("status", status).
		Int("bytes", bytes).
		Str("x_cache", xcache)
	if reason != "" {
		e = e.Str("x_cache_reason", reason)
	}
	e.Dur("duration_ms", took).Msg("request")
}

// truncate returns s, or its first n bytes and a note of how long it was.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "...(truncated from " + strconv.Itoa(len(s)) + " bytes)"
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

func (r *statusRecorder) WriteString(s string) (int, error) {
	n, err := io.WriteString(r.ResponseWriter, s)
	r.bytes += n
	return n, err
}
