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
	"github.com/hibiken/asynq"
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
	keys, err := warmKeys(*customers, *ranges, *from, *to, cfg)
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
	c := asynq.NewClientFromRedisClient(rdb)
	defer c.Close()
	var enqueued, duplicates int
	var errs []error
	for _, k := range keys {
		ok, err := jobs.Enqueue(ctx, c, k, jobs.QueueWarming, *force)
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

// warmKeys builds the keys of customers x (ranges, or the one range from..to),
// checking every input the way the read API does.
func warmKeys(customers, ranges, from, to string, cfg Config) ([]dashcache.ReportKey, error) {
	today := time.Now().In(cfg.Zone)
	if customers == "" {
		return nil, errors.New("--customers is required")
	}
	explicit := from != "" || to != ""
	if explicit == (ranges != "") {
		return nil, errors.New("give either --ranges or --from and --to")
	}
	var keys []dashcache.ReportKey
	for _, c := range strings.Split(customers, ",") {
		c = strings.TrimSpace(c)
		if explicit {
			k, err := dashcache.ParseReportKey(c, from, to, today)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
			continue
		}
		for _, r := range strings.Split(ranges, ",") {
			k, err := dashcache.PresetKey(c, strings.TrimSpace(r), today)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
	}
	return keys, nil
}
