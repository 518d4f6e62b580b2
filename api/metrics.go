package api

import (
	"fmt"

	"github.com/dashcache/dashcache/internal/prom"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the read endpoint's Prometheus metrics.
type metrics struct {
	reads map[string]prometheus.Counter // by result, resolved once
	// reportReads are the reads of each named report (the catalogue's), by
	// result.
	reportReads map[string]map[string]prometheus.Counter
	fillWait    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, reports []string, local *l1) (*metrics, error) {
	results := []string{resultHit, resultMiss, resultStale, resultStaleIfError, resultPending, resultRefused, resultCanceled, resultError}
	reads := prom.CounterVec("dashcache_reads_total",
		"Report reads, by result: hit, miss (waited for a fill), stale, stale_if_error (served stale from this process's memory because Redis is unreachable), "+
			"pending (202), refused (429, or 503 while the breaker is open), canceled (the reader hung up), error.",
		"result", results...)
	reportReads := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "dashcache_report_reads_total",
		Help: "Reads of each named report of the catalogue, by result (as dashcache_reads_total, which counts them too).",
	}, []string{"report", "result"})
	m := &metrics{
		reads:       map[string]prometheus.Counter{},
		reportReads: map[string]map[string]prometheus.Counter{},
		fillWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dashcache_fill_wait_seconds",
			Help:    "How long a reader of an uncached report waited for its fill.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 20, 30},
		}),
	}
	for _, r := range results {
		m.reads[r] = reads.WithLabelValues(r)
	}
	for _, report := range reports {
		m.reportReads[report] = map[string]prometheus.Counter{}
		for _, r := range results {
			m.reportReads[report][r] = reportReads.WithLabelValues(report, r)
		}
	}
	subscribed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dashcache_l1_subscription_up",
		Help: "1 while this API process's subscription to fill notifications is up, so that its L1 serves hits; " +
			"0 while it is down: L1 is empty (what it held is served stale only to reads that find Redis failing), " +
			"and waiting readers learn of fills only by looking again (every 2 s).",
	}, func() float64 {
		if local.isUp() {
			return 1
		}
		return 0
	})
	if err := prom.Register(reg, reads, reportReads, m.fillWait, subscribed); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return m, nil
}

// read counts a read of report ("" the default report) and its result.
func (m *metrics) read(report, result string) {
	m.reads[result].Inc()
	if report != "" {
		m.reportReads[report][result].Inc()
	}
}
