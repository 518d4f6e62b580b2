// Package provider talks to the BI platform: Client speaks the provider
// contract over HTTP, Simulator stands in for the platform (in process or as an
// HTTP server), and Limited holds every worker of the fleet to one shared call
// rate and to the platform's Retry-After, through Redis.
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
