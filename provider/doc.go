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
	"errors"

	"github.com/dashcache/dashcache"
)

// Source is a BI platform as this package's parts see it: it answers report
// queries and lists its customers. Client, Reports and Simulator implement
// it; Measured only answers queries. The catalogue's other back ends (Postgres, MySQL, Cube,
// Metabase) only answer queries: they have no list of dashcache's
// customers.
type Source interface {
	dashcache.ReportSource
	Customers(ctx context.Context) ([]string, error)
}

// ErrNoCustomerList is the error of Reports.Customers when there is no BI
// platform of the provider contract (DASHCACHE_PROVIDER_URL) to list the
// customers: a warming plan names them instead.
var ErrNoCustomerList = errors.New("provider: no BI platform lists the customers: customers: all lists those of " +
	"DASHCACHE_PROVIDER_URL (the provider contract's GET /customers), which is not set; name the customers instead")

var (
	_ Source                 = (*Client)(nil)
	_ dashcache.ReportSource = (*Postgres)(nil)
	_ dashcache.ReportSource = (*MySQL)(nil)
	_ Source                 = (*Reports)(nil)
	_ dashcache.ReportSource = (*Cube)(nil)
	_ dashcache.ReportSource = (*Metabase)(nil)
	_ Source                 = (*Simulator)(nil)
	_ dashcache.ReportSource = (*Measured)(nil)
)
