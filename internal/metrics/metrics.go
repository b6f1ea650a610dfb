// Package metrics is tokentap's Prometheus surface (GET /metrics): what the
// proxy did (calls by outcome, tokens, latencies), what it holds (calls in
// flight, store size, OTLP backlog), and the Go runtime's and process's own
// figures.
package metrics

import (
	"context"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/upstream"
)

// Metrics holds tokentap's collectors.
type Metrics struct {
	reg          *prometheus.Registry
	calls        *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	invalid      *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	ttft         *prometheus.HistogramVec
	rejected     *prometheus.CounterVec
	retries      *prometheus.CounterVec
	retriesWrote *prometheus.CounterVec
	recordErrors prometheus.Counter
	drift        *prometheus.CounterVec
}

// Sources are the live figures /metrics reads when scraped.
type Sources struct {
	InFlight  func() float64
	Paused    func() bool
	Store     *store.Store
	Pusher    *exporter.Pusher // nil without --otlp-endpoint
	Upstreams *upstream.Set
}

// New registers tokentap's metrics.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		reg: reg,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokentap_calls_total", Help: "Traced calls recorded, by the agent's dialect, the operation sent upstream, status (ok, error, cancelled), HTTP status and upstream.",
		}, []string{"dialect", "operation", "status", "http_status", "upstream"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokentap_tokens_total", Help: "Token IDs recorded, by direction (prompt, completion).",
		}, []string{"direction"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokentap_invalid_token_ids_calls_total", Help: "Successful calls whose token IDs failed the fidelity check, by operation.",
		}, []string{"operation"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokentap_call_duration_seconds", Help: "Traced call duration, from the request to the record, by dialect, operation and upstream.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, []string{"dialect", "operation", "upstream"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokentap_time_to_first_token_seconds", Help: "Streaming calls: time from the request to the first token event, by upstream.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"upstream"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokentap_trajectory_drift_total", Help: "Calls of completed attempts whose prompt drifted from the tokens the model sampled (retokenization drift), by cause.",
		}, []string{"cause"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokentap_refused_requests_total", Help: "Requests tokentap refused before forwarding, by reason.",
		}, []string{"reason"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokentap_upstream_retries_total", Help: "Calls sent to another replica after their request provably never reached this one (no connection, or not written whole), by the replica that failed.",
		}, []string{"upstream"}),
		retriesWrote: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokentap_upstream_retries_after_write_total", Help: "Calls sent to another replica after their connection to this one failed once the request was written (--retry-after-write: may be a second generation), by the replica that failed.",
		}, []string{"upstream"}),
		recordErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tokentap_record_errors_total", Help: "Calls tokentap could not commit to its store (their answers were withheld).",
		}),
	}
	reg.MustRegister(m.calls, m.tokens, m.invalid, m.duration, m.ttft, m.rejected, m.retries, m.retriesWrote, m.recordErrors, m.drift)
	if src.Upstreams != nil {
		reg.MustRegister(upstreamCollector{src.Upstreams})
	}
	if src.InFlight != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokentap_calls_in_flight", Help: "Traced calls forwarded and not yet recorded.",
		}, src.InFlight))
	}
	if src.Paused != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tokentap_paused", Help: "1 while new traced calls are refused (POST /admin/pause).",
		}, func() float64 {
			if src.Paused() {
				return 1
			}
			return 0
		}))
	}
	if st := src.Store; st != nil {
		reg.MustRegister(storeCollector{st})
	}
	if p := src.Pusher; p != nil {
		reg.MustRegister(pushCollector{p})
	}
	return m
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ObserveCall counts a recorded call; recordErr is the store's error, if
// the record could not be committed.
func (m *Metrics) ObserveCall(c *exporter.Call, recordErr error) {
	op := c.Request.Endpoint.Operation()
	m.calls.WithLabelValues(c.Dialect, op, string(c.Status), strconv.Itoa(c.HTTPStatus), c.Upstream).Inc()
	m.duration.WithLabelValues(c.Dialect, op, c.Upstream).Observe(c.End.Sub(c.Start).Seconds())
	if !c.FirstToken.IsZero() {
		m.ttft.WithLabelValues(c.Upstream).Observe(c.FirstToken.Sub(c.Start).Seconds())
	}
	if recordErr != nil {
		m.recordErrors.Inc()
	}
	if c.Status == exporter.StatusOK && !c.Valid {
		m.invalid.WithLabelValues(op).Inc()
	}
	prompt := 0
	for _, p := range c.Response.Prompts {
		prompt += len(p)
	}
	completion := 0
	for _, ch := range c.Response.Choices {
		completion += len(ch.TokenIDs)
	}
	m.tokens.WithLabelValues("prompt").Add(float64(prompt))
	m.tokens.WithLabelValues("completion").Add(float64(completion))
}

// ObserveDrift counts drifted calls of a completed attempt.
func (m *Metrics) ObserveDrift(cause string, calls int) {
	m.drift.WithLabelValues(cause).Add(float64(calls))
}

// ObserveRefused counts a request refused before it was forwarded.
func (m *Metrics) ObserveRefused(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// ObserveRetry counts a call moved off a replica, apart by whether its
// request may have reached that replica (kind "after_write").
func (m *Metrics) ObserveRetry(upstream, kind string) {
	if kind == "after_write" {
		m.retriesWrote.WithLabelValues(upstream).Inc()
		return
	}
	m.retries.WithLabelValues(upstream).Inc()
}

var (
	upstreamInFlightDesc = prometheus.NewDesc("tokentap_upstream_in_flight", "Calls in flight on each replica.", []string{"upstream"}, nil)
	upstreamHealthyDesc  = prometheus.NewDesc("tokentap_upstream_healthy", "1 while a replica passes its health checks (unhealthy ones get no new calls).", []string{"upstream"}, nil)
)

// upstreamCollector reads the replica set at scrape time: replicas come
// and go with reloads.
type upstreamCollector struct{ set *upstream.Set }

func (c upstreamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- upstreamInFlightDesc
	ch <- upstreamHealthyDesc
}

func (c upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.set.Replicas() {
		healthy := 0.0
		if r.Healthy() {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(upstreamInFlightDesc, prometheus.GaugeValue, float64(r.InFlight()), r.Name())
		ch <- prometheus.MustNewConstMetric(upstreamHealthyDesc, prometheus.GaugeValue, healthy, r.Name())
	}
}

var (
	storeBytesDesc   = prometheus.NewDesc("tokentap_store_bytes", "Size of the Badger store on disk, by part (lsm, vlog).", []string{"part"}, nil)
	storeCursorDesc  = prometheus.NewDesc("tokentap_store_cursor", "Cursor of the last committed record.", nil, nil)
	storeCommitsDesc = prometheus.NewDesc("tokentap_store_commits_total", "Store transactions committed (group commits).", nil, nil)
	storeRecordsDesc = prometheus.NewDesc("tokentap_store_committed_records_total", "Records committed.", nil, nil)
	storeCommitDesc  = prometheus.NewDesc("tokentap_store_commit_duration_seconds", "Duration of store commits (group commits: one per batch of records).", nil, nil)
	storeHeldDesc    = prometheus.NewDesc("tokentap_store_held_records", "Records past --retention kept because the OTLP outbox has not shipped them yet.", nil, nil)
	storeHeldAgeDesc = prometheus.NewDesc("tokentap_store_held_oldest_age_seconds", "Age of the oldest record held past --retention (0 when none).", nil, nil)
	storeDiskDesc    = prometheus.NewDesc("tokentap_store_disk_bytes", "Disk space the store's files take (the figure --max-disk bounds).", nil, nil)
	storeFullDesc    = prometheus.NewDesc("tokentap_store_full", "1 while the store refuses new records for lack of space (calls get 507).", nil, nil)
)

// storeCollector reads the store's figures at scrape time.
type storeCollector struct{ st *store.Store }

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeBytesDesc, storeCursorDesc, storeCommitsDesc, storeRecordsDesc, storeCommitDesc, storeHeldDesc, storeHeldAgeDesc, storeDiskDesc, storeFullDesc} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.Stats()
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(s.LSMBytes), "lsm")
	ch <- prometheus.MustNewConstMetric(storeBytesDesc, prometheus.GaugeValue, float64(s.VLogBytes), "vlog")
	ch <- prometheus.MustNewConstMetric(storeCursorDesc, prometheus.GaugeValue, float64(s.Cursor))
	ch <- prometheus.MustNewConstMetric(storeCommitsDesc, prometheus.CounterValue, float64(s.Commits))
	ch <- prometheus.MustNewConstMetric(storeRecordsDesc, prometheus.CounterValue, float64(s.CommittedRecords))
	h := s.CommitLatency
	buckets := make(map[float64]uint64, len(h.Bounds))
	var cumulative uint64
	for i, b := range h.Bounds {
		cumulative += h.Counts[i]
		buckets[b.Seconds()] = cumulative
	}
	ch <- prometheus.MustNewConstHistogram(storeCommitDesc, h.Count, h.Sum.Seconds(), buckets)
	ch <- prometheus.MustNewConstMetric(storeHeldDesc, prometheus.GaugeValue, float64(s.HeldRecords))
	ch <- prometheus.MustNewConstMetric(storeHeldAgeDesc, prometheus.GaugeValue, s.HeldOldestAge)
	ch <- prometheus.MustNewConstMetric(storeDiskDesc, prometheus.GaugeValue, float64(c.st.DiskUsage()))
	full := 0.0
	if c.st.Writable() != nil {
		full = 1
	}
	ch <- prometheus.MustNewConstMetric(storeFullDesc, prometheus.GaugeValue, full)
}

var (
	backlogDesc    = prometheus.NewDesc("tokentap_otlp_backlog_records", "Records committed but not yet acknowledged by the OTLP collector.", nil, nil)
	backlogAgeDesc = prometheus.NewDesc("tokentap_otlp_backlog_age_seconds", "Age of the oldest record not yet acknowledged.", nil, nil)
	sentDesc       = prometheus.NewDesc("tokentap_otlp_sent_spans_total", "Spans the collector acknowledged.", nil, nil)
	sentBytesDesc  = prometheus.NewDesc("tokentap_otlp_sent_bytes_total", "Encoded bytes of the acknowledged exports.", nil, nil)
	refusedDesc    = prometheus.NewDesc("tokentap_otlp_rejected_spans_total", "Spans the collector refused (they stay in the store).", nil, nil)
	failuresDesc   = prometheus.NewDesc("tokentap_otlp_consecutive_failures", "Exports failed in a row.", nil, nil)
)

// pushCollector reads the OTLP outbox's state at scrape time.
type pushCollector struct{ p *exporter.Pusher }

func (c pushCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backlogDesc, backlogAgeDesc, sentDesc, sentBytesDesc, refusedDesc, failuresDesc} {
		ch <- d
	}
}

func (c pushCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.State(context.Background())
	ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(s.Backlog))
	ch <- prometheus.MustNewConstMetric(backlogAgeDesc, prometheus.GaugeValue, s.BacklogAge)
	ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(s.SentSpans))
	ch <- prometheus.MustNewConstMetric(sentBytesDesc, prometheus.CounterValue, float64(s.SentBytes))
	ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(s.RejectedSpans))
	ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.GaugeValue, float64(s.Failures))
}
