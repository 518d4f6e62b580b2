package api

import (
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// accessLog logs one line per request: method, path and query (never headers,
// which may carry credentials), status, bytes and duration.
func accessLog(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		log.Info().
			Str("method", r.Method).
			Str("path", r.URL.Path).
			Str("query", r.URL.RawQuery).
			Int("status", rec.status).
			Int("bytes", rec.bytes).
			Str("x_cache", rec.Header().Get("X-Cache")).
			Dur("duration_ms", time.Since(start)).
			Msg("request")
	})
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
