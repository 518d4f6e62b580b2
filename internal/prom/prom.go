// Package prom holds what dashcache's packages share about their Prometheus
// metrics: counters by one label whose series all exist from the start, and
// registration with an optional registerer.
package prom

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// CounterVec returns a counter by label whose series for values exist from
// the start, at 0, so that rates and alerts see them before the first event.
func CounterVec(name, help, label string, values ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, v := range values {
		c.WithLabelValues(v)
	}
	return c
}

// Register registers cs with reg; a nil reg exports nothing.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}
