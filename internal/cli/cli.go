// Package cli is the dashcache binary: it reads the role and the settings,
// builds the role's parts in order and runs them until the context ends.
// cmd/dashcache only calls Run. Roles and settings are documented in
// README.md.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// ErrUsage is returned, after the usage went to stderr, for an unknown role
// or bad arguments: the binary exits 2.
var ErrUsage = errors.New("usage")

// Run runs the role named by args[0] (default all), with the settings getenv
// reads, until ctx ends. Logs go to stdout; the warm command prints its
// report to stdout and logs to stderr.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name, rest := Roles[0].Name, args
	if len(args) > 0 {
		name, rest = args[0], args[1:]
	}
	role, ok := RoleNamed(name)
	if !ok || (role.Command == nil && len(rest) > 0) {
		fmt.Fprint(stderr, usage())
		if !slices.Contains([]string{"-h", "--help", "help"}, name) {
			fmt.Fprintf(stderr, "\nunknown role or extra arguments: %q\n", args)
		}
		return ErrUsage
	}
	cfg, err := LoadConfig(role.Name, getenv)
	if err != nil {
		return fmt.Errorf("bad settings:\n%w", err)
	}
	if role.Command != nil {
		// stdout is the command's report; logs go to stderr.
		return role.Command(ctx, cfg, newLogger(cfg, stderr), rest, stdout, stderr)
	}
	out := newLogWriter(stdout, 100*time.Millisecond)
	defer out.Close()
	log := newLogger(cfg, out).With().Str("role", role.Name).Logger()
	if role.Name == "fakebi" {
		return serveFakeBI(ctx, cfg, log)
	}
	return serve(ctx, cfg, log)
}

// usage is the help text, built from Roles.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: dashcache [role]\n\nroles:\n")
	for _, r := range Roles {
		for i, line := range strings.Split(r.Does, "\n") {
			name := ""
			if i == 0 {
				name = r.Name
			}
			fmt.Fprintf(&b, "  %-10s %s\n", name, line)
		}
	}
	var needRedis []string
	for _, r := range Roles {
		if r.Redis && !r.Embedded {
			needRedis = append(needRedis, r.Name)
		}
	}
	fmt.Fprintf(&b, "\nRoles %s need DASHCACHE_REDIS_URL, DASHCACHE_REDIS_CLUSTER_ADDRS or DASHCACHE_REDIS_SENTINEL_ADDRS (with DASHCACHE_REDIS_SENTINEL_MASTER).\n", strings.Join(needRedis, ", "))
	b.WriteString("Settings are environment variables DASHCACHE_*; see README.md.\n")
	return b.String()
}

func newLogger(cfg Config, out io.Writer) zerolog.Logger {
	if cfg.LogConsole {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(cfg.LogLevel).With().Timestamp().Logger()
}
