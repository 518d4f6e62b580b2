package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/jobs"
	"github.com/rs/zerolog"
)

// runWarm is the one-shot role: it enqueues a warm task per (customer, range)
// on the warming queue, prints a line per key and a summary, and exits.
func runWarm(ctx context.Context, cfg Config, log zerolog.Logger, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dashcache warm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	customers := fs.String("customers", "", "comma-separated customers (required)")
	ranges := fs.String("ranges", "", "comma-separated presets: "+strings.Join(dashcache.PresetNames, ", "))
	from := fs.String("from", "", "first day YYYY-MM-DD (with --to, instead of --ranges)")
	to := fs.String("to", "", "last day YYYY-MM-DD")
	force := fs.Bool("force", false, "refresh reports that are still fresh")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	keys, err := dashcache.WarmKeys(splitList(*customers), splitList(*ranges), *from, *to, time.Now().In(cfg.Zone))
	if err != nil || fs.NArg() > 0 {
		if err == nil {
			err = fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		fmt.Fprintf(stderr, "dashcache warm: %v\n", err)
		fs.Usage()
		return errUsage
	}

	rdb, closeRedis, err := openRedis(cfg, log, false)
	if err != nil {
		return err
	}
	defer closeRedis()
	enq := jobs.NewEnqueuer(rdb, nil)
	var enqueued, duplicates int
	var errs []error
	for _, k := range keys {
		ok, err := enq.Enqueue(ctx, k, jobs.QueueWarming, dashcache.Refresh{Force: *force})
		switch {
		case err != nil:
			errs = append(errs, err)
			fmt.Fprintf(stdout, "failed     %s: %v\n", k, err)
		case ok:
			enqueued++
			fmt.Fprintf(stdout, "enqueued   %s\n", k)
		default:
			duplicates++
			fmt.Fprintf(stdout, "duplicate  %s\n", k)
		}
	}
	fmt.Fprintf(stdout, "%d enqueued, %d duplicate, %d failed\n", enqueued, duplicates, len(errs))
	return errors.Join(errs...)
}

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
