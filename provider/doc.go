// Package provider holds the BI back ends: Client speaks the provider
// contract over HTTP, Postgres and MySQL answer the catalogue's named reports
// from a PostgreSQL or MySQL/MariaDB database, Cube from Cube's REST API and
// Metabase by running its saved questions; Reports routes each report to its
// back end; Simulator stands in for the platform (in process or as an
// HTTP server), and Measured counts and times the calls of any of them. They
// know nothing of the cache: package guard protects the platform for the
// fleet.
package provider

import (
	"context"

	"github.com/dashcache/dashcache"
)

// Source is a BI platform as this package's parts see it: it answers report
// queries and lists its customers. Client, Postgres, MySQL, Cube, Metabase,
// Reports, Simulator and Measured implement it; a back end that has no list
// of customers (Postgres, MySQL, Cube, Metabase) fails Customers with
// ErrNoCustomerList, as a permanent error.
type Source interface {
	dashcache.ReportSource
	Customers(ctx context.Context) ([]string, error)
}

var (
	_ Source = (*Client)(nil)
	_ Source = (*Postgres)(nil)
	_ Source = (*MySQL)(nil)
	_ Source = (*Reports)(nil)
	_ Source = (*Cube)(nil)
	_ Source = (*Metabase)(nil)
	_ Source = (*Simulator)(nil)
	_ Source = (*Measured)(nil)
)
