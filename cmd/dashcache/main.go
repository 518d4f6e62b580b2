// Command dashcache runs one role of dashcache: the read API, the warm worker,
// both on an embedded Redis (the default), or a simulated BI platform. See
// README.md and CONTRACT.md for roles and settings.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // zones work in slim containers without system zone data
)

const usage = `usage: dashcache [role]

roles:
  all        API + worker (+ scheduler with DASHCACHE_SCHEDULE_FILE) in one
             process (default); on an embedded Redis unless a Redis is set
  api        the read endpoint GET /v1/reports
  worker     the asynq server that fills reports
  scheduler  cron-driven warming plans from DASHCACHE_SCHEDULE_FILE
  warm       enqueue warm tasks once and exit:
             dashcache warm --customers a,b --ranges yesterday,last_7_days [--force]
             dashcache warm --customers a --from 2025-01-01 --to 2025-01-31
  fakebi     a simulated BI platform speaking the provider contract

All roles but all and fakebi need DASHCACHE_REDIS_URL or
DASHCACHE_REDIS_CLUSTER_ADDRS.
Settings are environment variables DASHCACHE_*; see README.md.
`

// errUsage makes main exit 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "dashcache:", err)
		os.Exit(1)
	}
}

// run runs the role named by args until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	role, rest := "all", args
	if len(args) > 0 {
		role, rest = args[0], args[1:]
	}
	serve, isServer := roles[role]
	if (!isServer && role != "warm") || (isServer && len(rest) > 0) {
		fmt.Fprint(stderr, usage)
		if role != "-h" && role != "--help" && role != "help" {
			fmt.Fprintf(stderr, "\nunknown role or extra arguments: %q\n", args)
		}
		return errUsage
	}
	cfg, err := loadConfig(role, getenv)
	if err != nil {
		return fmt.Errorf("bad settings:\n%w", err)
	}
	if role == "warm" {
		// stdout is the command's report; logs go to stderr.
		return runWarm(ctx, cfg, newLogger(cfg, stderr), rest, stdout, stderr)
	}
	out := newLogWriter(stdout, 100*time.Millisecond)
	defer out.Close()
	return serve(ctx, cfg, newLogger(cfg, out).With().Str("role", role).Logger())
}
