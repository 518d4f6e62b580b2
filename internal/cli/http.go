package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/dashcache/dashcache/api"
	"github.com/rs/zerolog"
)

// maxHeaderBytes bounds a request's header: a report's read needs a few
// hundred bytes.
const maxHeaderBytes = 32 << 10

// serveHTTP serves h on addr until ctx ends; then it runs beforeDrain (if any)
// and shuts the server down gracefully. listening (if any) is told the address.
func serveHTTP(ctx context.Context, addr string, h http.Handler, log zerolog.Logger, listening func(net.Addr), beforeDrain func(context.Context) error) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s (DASHCACHE_LISTEN): %w", addr, err)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      api.MaxWait + 15*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	log.Info().Str("addr", ln.Addr().String()).Msg("listening")
	if listening != nil {
		listening(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if beforeDrain != nil {
		beforeDrain(sctx)
	}
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down HTTP server: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
