package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/dashcache/dashcache/provider"
	"github.com/rs/zerolog"
)

// runReports is the one-shot role of the report catalogue: "reports
// check" loads DASHCACHE_REPORTS_FILE, connects to each back end and checks
// each report without running it, as its back end's type allows
// (provider.Reports.Check: a SQL report prepared on the server, a
// Metabase card's tags, Cube's and an http back end's url and secret); it
// prints a line per report, and fails if any report is not ready.
func runReports(ctx context.Context, cfg Config, _ zerolog.Logger, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "check" {
		fmt.Fprintln(stderr, "usage: dashcache reports check")
		return ErrUsage
	}
	if cfg.Reports == nil {
		return errors.New("DASHCACHE_REPORTS_FILE is not set: there is no report catalogue to check")
	}
	reports, err := provider.OpenReports(ctx, cfg.Reports, cfg.getenv, nil,
		provider.Limits{Timeout: cfg.ProviderTimeout, MaxBodyBytes: cfg.ProviderMaxBytes, Concurrency: 1})
	if err != nil {
		return fmt.Errorf("DASHCACHE_REPORTS_FILE: %w", err)
	}
	defer reports.Close()
	failed := 0
	for _, c := range reports.Check(ctx) {
		state := "ok"
		if !c.OK {
			state, failed = "FAIL", failed+1
		}
		fmt.Fprintf(stdout, "%-4s %s on %s: %s\n", state, c.Report, c.Backend, c.Detail)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d reports are not ready", failed, len(cfg.Reports.Reports))
	}
	return nil
}
