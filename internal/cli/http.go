package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/dashcache/dashcache/api"
	"github.com/dashcache/dashcache/internal/front"
	"github.com/rs/zerolog"
	"github.com/valyala/fasthttp"
)

// maxHeaderBytes bounds a request's header: a report's read needs a few
// hundred bytes.
const maxHeaderBytes = 32 << 10

// drain is how a process leaves: for d after its context ends it goes on
// serving while /readyz answers 503 (set draining), so that load balancers
// stop sending it requests before it stops accepting them.
type drain struct {
	d        time.Duration
	draining *atomic.Bool
}

// drainingPinger is a Pinger that answers api.ErrDraining while draining.
type drainingPinger struct {
	api.Pinger
	draining *atomic.Bool
}

func (p drainingPinger) Ping(ctx context.Context) error {
	if p.draining.Load() {
		return api.ErrDraining
	}
	return p.Pinger.Ping(ctx)
}

// connCap is the cap on a process's open connections of cfg
// (DASHCACHE_MAX_CONNS, DASHCACHE_MAX_CONNS_PER_IP), whose refusals name
// the setting a client ran into.
func connCap(cfg Config) front.LimitConfig {
	return front.LimitConfig{
		Max: cfg.MaxConns, MaxPerIP: cfg.MaxConnsPerIP,
		TooMany: api.Problem(http.StatusServiceUnavailable, fmt.Sprintf(
			"this server holds %d connections open, its limit (DASHCACHE_MAX_CONNS); try again shortly, or another server", cfg.MaxConns)),
		TooManyFromIP: api.Problem(http.StatusServiceUnavailable, fmt.Sprintf(
			"your address holds %d connections open to this server, its limit for one address (DASHCACHE_MAX_CONNS_PER_IP); "+
				"reuse open connections or close some", cfg.MaxConnsPerIP)),
	}
}

// serveHTTP serves h on addr until ctx ends; then it drains (dr), runs
// beforeDrain (if any) and shuts the server down gracefully. listening (if
// any) is told the address. With fast, requests are first offered to it,
// on fasthttp (internal/front). Connections past caps are refused
// (front.Limit).
func serveHTTP(ctx context.Context, addr string, h http.Handler, fast func(*fasthttp.RequestCtx) bool, log zerolog.Logger, listening func(net.Addr), dr drain, beforeDrain func(context.Context) error, caps front.LimitConfig) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s (DASHCACHE_LISTEN): %w", addr, err)
	}
	ln = front.Limit(ln, caps)
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      api.MaxWait + 15*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	var srv interface {
		Serve(net.Listener) error
		Shutdown(context.Context) error
	} = hs
	if fast != nil {
		srv = front.New(front.Config{
			Fast: fast, Slow: h,
			ReadTimeout: hs.ReadTimeout, IdleTimeout: hs.IdleTimeout, WriteTimeout: hs.WriteTimeout,
			MaxHeaderBytes: maxHeaderBytes, MaxBodyBytes: api.MaxAdminBody,
			Problem: api.Problem, Log: log,
		})
	}
	log.Info().Str("addr", ln.Addr().String()).Int("max_conns", caps.Max).Int("max_conns_per_ip", caps.MaxPerIP).Msg("listening")
	if listening != nil {
		listening(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if dr.draining != nil && dr.d > 0 {
		dr.draining.Store(true)
		log.Info().Dur("drain", dr.d).Msg("draining: /readyz answers 503; serving on until the drain ends (DASHCACHE_DRAIN)")
		select {
		case err := <-errc:
			return err
		case <-time.After(dr.d):
		}
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if beforeDrain != nil {
		beforeDrain(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
