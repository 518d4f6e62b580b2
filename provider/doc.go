// Package provider talks to the BI platform: Client speaks the provider
// contract over HTTP, Simulator stands in for the platform (in process or as an
// HTTP server), and Limited guards it for the whole fleet, through Redis: one
// shared call rate, the platform's Retry-After, a share of calls in flight and
// a daily budget per customer, and a breaker for a platform that fails for
// everyone.
package provider

import (
	"context"

	"github.com/dashcache/dashcache"
)

// Source is a BI platform as this package's parts see it: it answers report
// queries and lists its customers. Client, Simulator and Limited implement it.
type Source interface {
	dashcache.ReportSource
	Customers(ctx context.Context) ([]string, error)
}

var (
	_ Source = (*Client)(nil)
	_ Source = (*Simulator)(nil)
	_ Source = (*Limited)(nil)
	_ Source = (*Measured)(nil)
)
