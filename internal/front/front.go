// Package front serves HTTP on fasthttp with a fast handler for the requests
// it answers by itself (hits from memory, where net/http's costs per request
// are most of the cost) and a net/http handler for every other request.
//
// A request the fast handler declines is written out again and read back by
// net/http's own parser, so the handler gets a request that owns its memory
// (fasthttp reuses its buffers after each request, and our handlers keep
// parts of a request, such as its report key, beyond it). Its context ends
// when the client hangs up, as net/http's does, and the answer, buffered,
// goes back through fasthttp. The connection stays with fasthttp: its next
// request is offered to the fast handler again. What this path does not
// give a handler: streaming (http.Flusher), hijacking, trailers.
//
// Serve and Shutdown may run in either order, at any time, and Shutdown
// more than once; both return (fasthttp's own do not when Shutdown comes
// before Serve has taken the listener).
//
// A request that cannot be read (a header or a body past its bound, not
// HTTP/1.1, too slow) is refused with a problem+json answer, and its
// connection is closed lingering (linger.go): what the client still sends
// is read and thrown away for a while, so that the refusal reaches a
// client still writing instead of a reset.
//
// Limit (limit.go) caps the connections a listener hands out, to a front
// or to net/http alike, answering those past the caps 503 problem+json.
//
// What fasthttp's parser does with requests that parsers disagree on is
// pinned by TestParserPins: it refuses two Content-Lengths, two Hosts and
// a Transfer-Encoding other than chunked or identity; with Content-Length
// and chunked both it reads chunked and closes; it joins obs-fold lines;
// it reads Transfer-Encoding: identity as no body; and before the
// handlers see a path it decodes %2f and %2e in it and removes its dot
// segments and empty ones (c.URI().PathOriginal() keeps the original).
package front

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// Config configures a front.
type Config struct {
	// Fast serves a request and returns true, or returns false having
	// written nothing. Required.
	Fast func(*fasthttp.RequestCtx) bool
	// Slow serves the others. Required.
	Slow http.Handler
	// ReadTimeout bounds the reading of a request, IdleTimeout the wait for
	// a connection's next one, WriteTimeout the writing of an answer.
	ReadTimeout, IdleTimeout, WriteTimeout time.Duration
	// MaxHeaderBytes bounds a request's header, MaxBodyBytes its body (read
	// whole before the handlers run). Required.
	MaxHeaderBytes, MaxBodyBytes int
	// Problem renders a refusal of a request that cannot be read (not
	// HTTP/1.x, a header or a body past its bound, too slow) as a
	// problem+json body. Required.
	Problem func(status int, detail string) []byte
	Log     zerolog.Logger // a panic of a handler is logged; default: none
}

// Server is a front. Serve it once, and Shutdown it, in either order.
type Server struct {
	cfg  Config
	fast *fasthttp.Server

	mu   sync.Mutex
	shut bool         // Shutdown has been called
	ln   net.Listener // the listener Serve was given, for Shutdown to close
}

// New returns a front of cfg.
func New(cfg Config) *Server {
	f := &Server{cfg: cfg}
	f.fast = &fasthttp.Server{
		Handler:               f.serve,
		ErrorHandler:          f.refuse,
		ReadTimeout:           cfg.ReadTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		ReadBufferSize:        cfg.MaxHeaderBytes,
		MaxRequestBodySize:    cfg.MaxBodyBytes,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		CloseOnShutdown:       true,
		// An idle keep-alive connection holds no buffers: 2 KB of heap
		// instead of 45 (BenchmarkIdleConnections), so that clients holding
		// many open cost little; hits pay about a fifth of their rate.
		ReduceMemoryUsage: true,
		Logger:            logger{cfg.Log},
		// Its logs of requests it cannot read leave the request's bytes
		// (which may hold credentials) out.
		SecureErrorLogMessage: true,
		// A form is the handler's business (ours take JSON).
		DisablePreParseMultipartForm: true,
	}
	return f
}

// Serve serves ln until Shutdown, and then returns http.ErrServerClosed, as
// http.Server.Serve does. After Shutdown it closes ln and returns
// http.ErrServerClosed at once.
func (f *Server) Serve(ln net.Listener) error {
	f.mu.Lock()
	if f.shut {
		f.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	f.ln = ln
	f.mu.Unlock()
	if err := f.fast.Serve(listener{ln}); err != nil {
		return err
	}
	return http.ErrServerClosed // ln was closed
}

// Shutdown stops accepting connections, lets the requests under way end
// (until ctx ends) and closes idle connections. It may run before Serve,
// alongside it, and more than once.
//
// It closes Serve's listener itself: fasthttp's Shutdown does nothing
// when its Serve has not yet taken the listener, and that Serve would
// then never return. Closed here, the listener makes Serve return whether
// fasthttp had taken it or not.
func (f *Server) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.shut = true
	ln := f.ln
	f.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	err := f.fast.ShutdownWithContext(ctx)
	if errors.Is(err, net.ErrClosed) { // fasthttp closing ln again
		err = nil
	}
	return err
}

// serve offers a request to Fast, and serves it with Slow if Fast declines.
func (f *Server) serve(c *fasthttp.RequestCtx) {
	defer func() {
		p := recover()
		switch {
		case p == http.ErrAbortHandler: // as net/http: no answer, the connection dropped
			c.HijackSetNoResponse(true)
			c.Hijack(func(net.Conn) {})
		case p != nil:
			f.cfg.Log.Error().Str("panic", fmt.Sprint(p)).Str("path", string(c.Path())).Bytes("stack", debug.Stack()).Msg("a handler panicked")
			c.Response.Reset()
			c.SetStatusCode(http.StatusInternalServerError)
			c.SetConnectionClose()
			lingerOnClose(c.Conn())
		}
	}()
	if f.cfg.Fast(c) {
		return
	}
	r, err := netHTTPRequest(c)
	if err != nil {
		f.refuse(c, err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := watchHangUp(c.Conn(), cancel)
	w := &buffered{header: http.Header{}}
	func() {
		defer stop()
		f.cfg.Slow.ServeHTTP(w, r.WithContext(ctx))
	}()
	w.copyTo(c)
}

// netHTTPRequest returns c's request as net/http reads it, in memory of its
// own.
func netHTTPRequest(c *fasthttp.RequestCtx) (*http.Request, error) {
	c.Request.Header.Del("Expect") // fasthttp has answered 100-continue
	// fasthttp does not write a request without a Host, which HTTP/1.0
	// allows (health checks send them): one stands in, and goes again.
	noHost := len(c.Request.Host()) == 0
	if noHost {
		c.Request.SetHost("no-host.invalid")
	}
	var replay bytes.Buffer
	if _, err := c.Request.WriteTo(&replay); err != nil {
		return nil, err
	}
	r, err := http.ReadRequest(bufio.NewReader(&replay))
	if err != nil {
		return nil, err
	}
	if noHost {
		r.Host = ""
		r.Header.Del("Host")
	}
	r.RemoteAddr = c.RemoteAddr().String()
	return r, nil
}

// refuse answers a request fasthttp could not read (or net/http could not
// read back).
func (f *Server) refuse(c *fasthttp.RequestCtx, err error) {
	status, detail := http.StatusBadRequest, "the request is not valid HTTP/1.1; check its request line and header"
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.As(err, &small):
		status, detail = http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("the request header is larger than %d bytes; send fewer or shorter headers", f.cfg.MaxHeaderBytes)
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status, detail = http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes; send less in each request", f.cfg.MaxBodyBytes)
	case errors.As(err, &netErr) && netErr.Timeout():
		status, detail = http.StatusRequestTimeout, "the request did not arrive in time; send it whole, without pauses"
	}
	c.Response.Reset()
	c.SetStatusCode(status)
	c.SetContentType("application/problem+json")
	c.Response.Header.Set("Cache-Control", "no-store")
	c.SetBody(f.cfg.Problem(status, detail))
	c.SetConnectionClose()
	lingerOnClose(c.Conn())
}

// buffered is the http.ResponseWriter of the slow handler: the answer is
// kept whole, then written by fasthttp. As with net/http, the header is the
// one at WriteHeader (or the first Write), and a 204 or 304 takes no body.
type buffered struct {
	header http.Header
	status int
	sent   http.Header // header as of WriteHeader
	body   bytes.Buffer
}

func (w *buffered) Header() http.Header { return w.header }

func (w *buffered) WriteHeader(status int) {
	if w.status == 0 {
		w.status, w.sent = status, w.header.Clone()
	}
}

func (w *buffered) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	if w.status == http.StatusNoContent || w.status == http.StatusNotModified {
		return 0, http.ErrBodyNotAllowed
	}
	return w.body.Write(b)
}

// copyTo sets the answer as c's response. fasthttp frames it: it sets
// Content-Length from the body (a HEAD keeps the one the handler gave), and
// sends no body with a HEAD, a 204 or a 304.
func (w *buffered) copyTo(c *fasthttp.RequestCtx) {
	w.WriteHeader(http.StatusOK)
	c.SetStatusCode(w.status)
	h := &c.Response.Header
	for name, values := range w.sent {
		if name == "Content-Length" && !c.IsHead() {
			continue
		}
		for _, v := range values {
			h.Add(name, v)
		}
	}
	if len(w.sent["Content-Type"]) == 0 && w.body.Len() > 0 {
		h.SetContentType(http.DetectContentType(w.body.Bytes()))
	}
	switch {
	case !c.IsHead():
		c.SetBody(w.body.Bytes())
	case len(w.sent["Content-Length"]) == 0:
		h.SetContentLength(w.body.Len()) // as net/http tells a HEAD
	}
}

// logger takes fasthttp's logs (a connection that could not be served: a
// client's error, mostly) at debug level.
type logger struct{ log zerolog.Logger }

func (l logger) Printf(format string, args ...any) { l.log.Debug().Msgf(format, args...) }
