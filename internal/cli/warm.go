package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/guard"
	"github.com/dashcache/dashcache/jobs"
	"github.com/rs/zerolog"
)

// runWarm is the one-shot role: it enqueues a fill task per (customer, report, range)
// on the warming queue, prints a line per key and a summary, and exits.
func runWarm(ctx context.Context, cfg Config, log zerolog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dashcache warm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	customers := fs.String("customers", "", "comma-separated customers (required)")
	ranges := fs.String("ranges", "", "comma-separated presets: "+strings.Join(dashcache.PresetNames, ", "))
	reports := fs.String("reports", "", "comma-separated reports of DASHCACHE_REPORTS_FILE (default: the default report, if there is one)")
	from := fs.String("from", "", "first day YYYY-MM-DD (with --to, instead of --ranges)")
	to := fs.String("to", "", "last day YYYY-MM-DD")
	force := fs.Bool("force", false, "refresh reports that are still fresh")
	if err := fs.Parse(args); err != nil {
		return ErrUsage
	}
	today := time.Now().In(cmp.Or(cfg.Zone, time.UTC))
	keys, err := dashcache.WarmKeys(dashcache.WarmRequest{Customers: splitList(*customers), Reports: splitList(*reports), Ranges: splitList(*ranges), From: *from, To: *to},
		today, dashcache.Earliest(cfg.EarliestDate, today), cfg.served())
	if err := checkArgs(fs, err); err != nil {
		return err
	}
	o, err := openQueue(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer o.close()
	res := dashcache.WarmAll(ctx, o.queue, keys, dashcache.Refresh{Force: *force}, dashcache.ContinueOnError)
	for _, wk := range res.Keys {
		if wk.Err != nil {
			fmt.Fprintf(stdout, "%-10s %v\n", wk.Result, wk.Err)
		} else {
			fmt.Fprintf(stdout, "%-10s %s\n", wk.Result, wk.Key)
		}
	}
	fmt.Fprintf(stdout, "%d enqueued, %d duplicate, %d skipped, %d failed\n", res.Enqueued, res.Duplicates, res.Skipped, len(res.Errors))
	return errors.Join(res.Errors...)
}

// checkArgs ends a one-shot command whose arguments failed (err) or left
// some over: it prints the problem and the flags, and returns ErrUsage.
func checkArgs(fs *flag.FlagSet, err error) error {
	if err == nil && fs.NArg() == 0 {
		return nil
	}
	if err == nil {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
	fs.Usage()
	return ErrUsage
}

// oneShot is what a one-shot command opens: Redis, the guard of the BI
// back ends, and the queue.
type oneShot struct {
	r     *redisParts
	bi    *guard.Guard
	queue *jobs.Enqueuer
}

// openQueue connects a one-shot command to Redis, the guard and the queue;
// close disconnects.
func openQueue(ctx context.Context, cfg Config, log zerolog.Logger) (*oneShot, error) {
	r, err := connect(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	o := &oneShot{r: r}
	o.bi, err = newGuard(cfg, r, nil)
	if err == nil {
		o.queue, err = newQueue(r, o.bi, nil)
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return o, nil
}

func (o *oneShot) close() { o.r.close() }

// splitList splits a comma-separated flag value; "" is no items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
