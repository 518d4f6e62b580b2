// Command dashcache runs one role of dashcache: the read API, the worker that
// fills reports, the warming scheduler, all of them in one process (the
// default, on an embedded Redis), a one-shot warm or invalidate, or a
// simulated BI platform. See README.md for roles and settings; internal/cli does the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // zones work in slim containers without system zone data

	"github.com/dashcache/dashcache/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, cli.ErrUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "dashcache:", err)
		os.Exit(1)
	}
}
