package store

import "github.com/dashcache/dashcache"

// Every Redis key dashcache uses is built here. A report's keys carry its
// canonical key in a {hash tag}, so that they share one Redis Cluster slot and a
// script may touch them together.

const prefix = "dashcache:"

// FillChannel is the pub/sub channel on which a fill or a remembered failure is
// announced; the message is the canonical key.
const FillChannel = prefix + "filled"

// RateLimitKey and ProviderPauseKey hold the fleet-wide BI rate limit and the
// pause that a 429 from the BI platform imposes on every worker.
const (
	RateLimitKey     = prefix + "{provider}:rate"
	ProviderPauseKey = prefix + "{provider}:pause"
)

func tagged(k dashcache.ReportKey, suffix string) string {
	return prefix + "{" + k.String() + "}:" + suffix
}

// EntryKey is where the report's cached entry (see NewEntry) is kept.
func EntryKey(k dashcache.ReportKey) string { return tagged(k, "report") }

// LockKey is the owner-token lock of the worker filling the report.
func LockKey(k dashcache.ReportKey) string { return tagged(k, "lock") }

// FailureKey remembers briefly that the BI platform failed for the report.
func FailureKey(k dashcache.ReportKey) string { return tagged(k, "failure") }
