// Package provider holds the BI clients: Client speaks the provider contract
// over HTTP, Simulator stands in for the platform (in process or as an HTTP
// server), and Measured counts and times the calls of either. They know
// nothing of the cache: package guard protects the platform for the fleet.
package provider

import (
	"context"

	"github.com/dashcache/dashcache"
)

// Source is a BI platform as this package's parts see it: it answers report
// queries and lists its customers. Client, Simulator and Measured implement it.
type Source interface {
	dashcache.ReportSource
	Customers(ctx context.Context) ([]string, error)
}

var (
	_ Source = (*Client)(nil)
	_ Source = (*Simulator)(nil)
	_ Source = (*Measured)(nil)
)
