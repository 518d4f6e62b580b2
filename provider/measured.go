package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/dashcache/dashcache"
	"github.com/dashcache/dashcache/internal/prom"
	"github.com/prometheus/client_golang/prometheus"
)

// Measured is a report source that counts and times the calls that reach the BI
// platform: dashcache_provider_calls_total{outcome} and
// dashcache_provider_call_seconds, and those of each named report,
// dashcache_report_calls_total{report,outcome}. Waits of the guard are not
// call time: it calls a Measured source when every guard lets it.
type Measured struct {
	src         dashcache.ReportSource
	calls       *prometheus.CounterVec
	reportCalls *prometheus.CounterVec // label values bounded by reports
	reports     map[string]bool
	duration    prometheus.Histogram
}

// NewMeasured returns src measured into reg (nil: not exported); reports
// are the named reports (the catalogue's) counted each on its own.
func NewMeasured(src dashcache.ReportSource, reg prometheus.Registerer, reports []string) (*Measured, error) {
	m := &Measured{
		src:     src,
		reports: map[string]bool{},
		reportCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dashcache_report_calls_total",
			Help: "Queries of each named report of the catalogue sent to its back end, by outcome (as dashcache_provider_calls_total, which counts them too).",
		}, []string{"report", "outcome"}),
		calls: prom.CounterVec("dashcache_provider_calls_total", "Report queries sent to the BI platform, by outcome.", "outcome",
			string(dashcache.OutcomeOK), string(dashcache.OutcomeRateLimited), string(dashcache.OutcomeTransient),
			string(dashcache.OutcomePermanent), string(dashcache.OutcomeInvalid)),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "dashcache_provider_call_seconds",
			Help:    "Duration of report queries to the BI platform.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 7.5, 10, 20, 30, 60},
		}),
	}
	for _, r := range reports {
		m.reports[r] = true
	}
	if err := prom.Register(reg, m.calls, m.reportCalls, m.duration); err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return m, nil
}

// Query queries the platform and records the call.
func (m *Measured) Query(ctx context.Context, key dashcache.ReportKey) ([]byte, error) {
	start := time.Now()
	data, err := m.src.Query(ctx, key)
	m.duration.Observe(time.Since(start).Seconds())
	outcome := string(dashcache.Outcome(err))
	m.calls.WithLabelValues(outcome).Inc()
	if m.reports[key.Report] {
		m.reportCalls.WithLabelValues(key.Report, outcome).Inc()
	}
	return data, err
}
