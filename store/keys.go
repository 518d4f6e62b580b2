package store

import (
	"strconv"

	"github.com/dashcache/dashcache"
	"github.com/redis/go-redis/v9"
)

// Every Redis key dashcache uses is built here. A report's keys carry its
// canonical key in a {hash tag}, so that they share one Redis Cluster slot and a
// script may touch them together.

const prefix = "dashcache:"

// FillChannel is the pub/sub channel on which a fill or a remembered failure is
// announced; the message is the canonical key.
const FillChannel = prefix + "filled"

// handOverChannel is the pub/sub channel on which an invalidation asks every
// API process for its reads (handover.go); the message is handOverReplyKey's
// token. Pub/sub spans a server's databases, so the channel names the
// database: an installation on another one is not asked. Its hash tag is
// FillChannel's whole name, so that on a Redis Cluster both channels have one
// slot, as a subscription's one connection wants (go-redis opens it on the
// first channel's slot).
func handOverChannel(rdb redis.UniversalClient) string {
	db := 0
	if c, ok := rdb.(*redis.Client); ok {
		db = c.Options().DB
	}
	return prefix + "handover:{" + FillChannel + "}:" + strconv.Itoa(db)
}

// probeChannel is where a Subscription publishes to itself, to check that
// it hears what is published where the fleet writes (store.go); token is
// its own. Its hash tag is FillChannel's whole name, as handOverChannel's.
func probeChannel(token string) string { return prefix + "probe:{" + FillChannel + "}:" + token }

// handOverReplyKey is the list on which the API processes asked for their
// reads answer.
func handOverReplyKey(token string) string { return prefix + "handover-replies:" + token }

// The fleet's state about one BI back end, all in one slot: the rate limit
// (rate.go: every call, readers' calls, a warming call waiting), the pause
// that a 429 imposes on every worker, and the breaker (breaker.go). The back
// end named "" (the one BI platform of the http contract) keeps the names it
// had before back ends had names: "{provider}".
func backendKey(backend, suffix string) string {
	if backend == "" {
		return prefix + "{provider}:" + suffix
	}
	return prefix + "{provider:" + backend + "}:" + suffix
}

// backendKeys are one back end's keys.
type backendKeys struct {
	// Sorted sets of call times. Not "rate": redis_rate kept a string
	// there, and processes of both versions share a Redis while a
	// deployment rolls.
	rate, readerRate, warmingWaits string
	pause                          string
	breakerOpen, breakerTripped    string
	breakerProbe, breakerFailures  string
	breakerAnswered                string
	// The latency of its successful calls, as a worker last saw it
	// (latency.go).
	latency string
}

func keysOfBackend(backend string) backendKeys {
	return backendKeys{
		rate:            backendKey(backend, "calls"),
		readerRate:      backendKey(backend, "calls:readers"),
		warmingWaits:    backendKey(backend, "warming-waits"),
		pause:           backendKey(backend, "pause"),
		breakerOpen:     backendKey(backend, "breaker:open"),
		breakerTripped:  backendKey(backend, "breaker:tripped"),
		breakerProbe:    backendKey(backend, "breaker:probe"),
		breakerFailures: backendKey(backend, "breaker:failures"),
		breakerAnswered: backendKey(backend, "breaker:answered"),
		latency:         backendKey(backend, "latency"),
	}
}

// A customer's keys carry "c:" and its name in a {hash tag}; the colon keeps
// them apart from the reports' tags, which no customer name can contain.
func customerKey(customer, suffix string) string {
	return prefix + "{c:" + customer + "}:" + suffix
}

// inflightKey holds the customer's BI calls in flight, its fleet-wide share
// (share.go).
func inflightKey(customer string) string { return customerKey(customer, "inflight") }

// deferredKey lists the customer's tasks waiting for a share (share.go).
func deferredKey(customer string) string { return customerKey(customer, "deferred") }

// pendingKey holds the customer's outstanding interactive fills (admission.go).
func pendingKey(customer string) string { return customerKey(customer, "pending") }

// reportsKey indexes the customer's cached reports (index.go).
func reportsKey(customer string) string { return customerKey(customer, "reports") }

// readsKey holds when each of the customer's reports was last read (index.go).
func readsKey(customer string) string { return customerKey(customer, "reads") }

// indexedKey holds the customers with reports in the index, each scored by
// the expiry of its last entry to expire: those whose all expired go at the
// next fill. (Not "indexed-customers", once a plain set.)
const indexedKey = prefix + "indexed"

// changesKey logs the customer's recent data changes (index.go);
// allChangesKey those of every customer.
func changesKey(customer string) string { return customerKey(customer, "changes") }

const allChangesKey = prefix + "changes"

// usageKey holds one day's BI calls and refusals of every customer (usage.go).
func usageKey(day dashcache.Day) string { return prefix + "usage:" + day.String() }

func tagged(k dashcache.ReportKey, suffix string) string {
	return prefix + "{" + k.String() + "}:" + suffix
}

// EntryKey is where the report's cached entry (see NewEntry) is kept.
func EntryKey(k dashcache.ReportKey) string { return tagged(k, "report") }

// LockKey is the owner-token lock of the worker filling the report.
func LockKey(k dashcache.ReportKey) string { return tagged(k, "lock") }

// FailureKey remembers briefly that the BI platform failed for the report.
func FailureKey(k dashcache.ReportKey) string { return tagged(k, "failure") }

// readyKey is written by a process's readiness check (CheckWritable);
// process is its own random name.
func readyKey(process string) string { return prefix + "ready:" + process }
