package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/rs/zerolog"
)

// runInvalidate is the one-shot role of POST /v1/invalidate: it makes stale
// the cached reports of the customers that cover the changed days, queues
// the refresh of those read within DASHCACHE_REFRESH_READ_WITHIN, prints the
// counts and exits.
func runInvalidate(ctx context.Context, cfg Config, log zerolog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dashcache invalidate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	customers := fs.String("customers", "", `comma-separated customers whose data changed, or "*" for every customer (required)`)
	from := fs.String("from", "", "first day changed, YYYY-MM-DD (required)")
	to := fs.String("to", "", "last day changed, YYYY-MM-DD (default: from)")
	reports := fs.String("reports", "", "comma-separated reports of DASHCACHE_REPORTS_FILE whose data changed (default: every report)")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	ch, err := dashcache.ParseChanged(splitList(*customers), splitList(*reports), *from, cmp.Or(*to, *from), time.Now().In(cmp.Or(cfg.Zone, time.UTC)), cfg.served())
	if err := checkArgs(fs, err); err != nil {
		return err
	}
	o, err := openQueue(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer o.close()
	res, err := o.queue.Invalidate(ctx, ch, cfg.ReadWithin)
	if err != nil {
		return err
	}
	reads := "reads not tracked (DASHCACHE_REFRESH_READ_WITHIN=0)"
	if cfg.ReadWithin > 0 {
		reads = fmt.Sprintf("reads of %d API processes, %d did not answer", res.APIs, res.APIsUnanswered)
	}
	fmt.Fprintf(stdout, "%d matched, %d marked stale, %d refreshed now (%s)\n", res.Matched, res.MarkedStale, res.Refreshed, reads)
	return nil
}
