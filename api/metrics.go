package api

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the read endpoint's Prometheus metrics.
type metrics struct {
	reads    map[string]prometheus.Counter // by result, resolved once
	fillWait prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	reads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dashcache_reads_total",
		Help: "Report reads, by result: hit, miss (waited for a fill), stale, pending (202), refused (429, or 503 while the breaker is open), canceled (the reader hung up), error.",
	}, []string{"result"})
	m := &metrics{
		reads: map[string]prometheus.Counter{},
		fillWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dashcache_fill_wait_seconds",
			Help:    "How long a reader of an uncached report waited for its fill.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 30},
		}),
	}
	for _, r := range []string{resultHit, resultMiss, resultStale, resultPending, resultRefused, resultCanceled, resultError} {
		m.reads[r] = reads.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{reads, m.fillWait} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("api: registering metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *metrics) read(result string) { m.reads[result].Inc() }
