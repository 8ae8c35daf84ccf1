package admission

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the webhook's Prometheus series. A nil *Metrics records nothing.
type Metrics struct {
	decisions   *prometheus.CounterVec
	latency     prometheus.Histogram
	cacheReqs   *prometheus.CounterVec
	storeErrors prometheus.Counter
	resolves    *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_admission_decisions_total",
			Help: "Admission decisions by result: allowed, denied, warned, audited, breakglass, skipped, error; and for the mutating endpoint pinned or unpinned.",
		}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "signet_admission_duration_seconds",
			Help:    "Time to decide one admission request, from decoded request to response.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		cacheReqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_verdict_cache_requests_total",
			Help: "Verdict and tag cache look-ups by result: hit or miss.",
		}, []string{"result"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "signet_verdict_store_errors_total",
			Help: "Verdict reads that failed (the store could not be reached or answered an error).",
		}),
		resolves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signet_tag_resolutions_total",
			Help: "Tags resolved to digests at the registry, by result: ok or error.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.decisions, m.latency, m.cacheReqs, m.storeErrors, m.resolves)
	for _, r := range []string{"allowed", "denied", "warned", "audited", "breakglass", "skipped", "error", "pinned", "unpinned"} {
		m.decisions.WithLabelValues(r)
	}
	m.cacheReqs.WithLabelValues("hit")
	m.cacheReqs.WithLabelValues("miss")
	return m
}

func (m *Metrics) decision(result string, took time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(result).Inc()
	m.latency.Observe(took.Seconds())
}

func (m *Metrics) cache(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.cacheReqs.WithLabelValues("hit").Inc()
	} else {
		m.cacheReqs.WithLabelValues("miss").Inc()
	}
}

func (m *Metrics) storeError() {
	if m == nil {
		return
	}
	m.storeErrors.Inc()
}

func (m *Metrics) resolved(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.resolves.WithLabelValues("error").Inc()
	} else {
		m.resolves.WithLabelValues("ok").Inc()
	}
}
