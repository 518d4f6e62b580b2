package cli

import (
	"context"
	"io"

	"github.com/rs/zerolog"
)

// Role is one way to run dashcache; the binary's first argument names it.
type Role struct {
	Name string
	// Does says what the role runs, for the usage text.
	Does string
	// Listen is the role's default DASHCACHE_LISTEN; "" for a role that
	// serves no HTTP.
	Listen string
	// API, Worker and Scheduler are the parts the role runs in its process.
	API, Worker, Scheduler bool
	// ScheduleRequired: the role cannot start without
	// DASHCACHE_SCHEDULE_FILE (otherwise a Scheduler runs only with one).
	ScheduleRequired bool
	// Redis: the role needs a Redis; Embedded: it may run on an embedded
	// in-process one when none is set.
	Redis, Embedded bool
	// Command, for a one-shot role, runs it with its arguments: it prints
	// its report to stdout, logs to stderr, and exits.
	Command func(ctx context.Context, cfg Config, log zerolog.Logger, args []string, stdout, stderr io.Writer) error
}

// Roles are every role, the default (all) first. Usage, default listen
// addresses, README's role table and the deployments tests all read this
// list.
var Roles = []Role{
	{Name: "all", Listen: "127.0.0.1:8080", API: true, Worker: true, Scheduler: true, Redis: true, Embedded: true,
		Does: "API + worker (+ scheduler with DASHCACHE_SCHEDULE_FILE) in one\nprocess (default); on an embedded Redis unless a Redis is set"},
	{Name: "api", Listen: "127.0.0.1:8080", API: true, Redis: true,
		Does: "the read endpoint GET /v1/reports, admin endpoints, /monitoring/"},
	{Name: "worker", Listen: "127.0.0.1:9090", Worker: true, Redis: true,
		Does: "the asynq server that fills reports"},
	{Name: "scheduler", Listen: "127.0.0.1:9091", Scheduler: true, ScheduleRequired: true, Redis: true,
		Does: "cron-driven warming plans from DASHCACHE_SCHEDULE_FILE"},
	{Name: "warm", Redis: true, Command: runWarm,
		Does: "enqueue fill tasks once and exit:\n" +
			"dashcache warm --customers a,b --ranges yesterday,last_7_days [--force]\n" +
			"dashcache warm --customers a --from 2025-01-01 --to 2025-01-31"},
	{Name: "invalidate", Redis: true, Command: runInvalidate,
		Does: "mark stale the cached reports covering changed days, refresh\n" +
			"those read lately, and exit:\n" +
			"dashcache invalidate --customers acme --from 2026-11-20 [--to 2026-11-21]\n" +
			"dashcache invalidate --customers '*' --from 2026-11-20"},
	{Name: "reports", Command: runReports,
		Does: "check the report catalogue (DASHCACHE_REPORTS_FILE) against its\n" +
			"back ends, a line per report, and exit 1 if one is not ready:\n" +
			"dashcache reports check"},
	{Name: "plans", Redis: true, ScheduleRequired: true, Command: runPlans,
		Does: "size each warming plan of DASHCACHE_SCHEDULE_FILE at its next firing\n" +
			"(its BI calls, at the fleet's rate and on the workers' slots), a few\n" +
			"lines per plan, and exit 1 if one cannot finish by its deadline:\n" +
			"dashcache plans check [--latency 2s] [--slots 40]"},
	{Name: "fakebi", Listen: "127.0.0.1:8081",
		Does: "a simulated BI platform speaking the provider contract"},
}

// RoleNamed returns the role called name.
func RoleNamed(name string) (Role, bool) {
	for _, r := range Roles {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}
