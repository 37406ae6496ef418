package bridge

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Message results counted in bridge_messages_total.
const (
	// ResultQueued is a message stored in the queue (replays are not counted).
	ResultQueued = "queued"
	// ResultDelivered is a message OneChat or the platform accepted.
	ResultDelivered = "delivered"
	// ResultRetried is a failed attempt that will be retried after a backoff.
	ResultRetried = "retried"
	// ResultFailed is a message given up on: a permanent error, or too many attempts.
	ResultFailed = "failed"
)

// Metrics are the core's Prometheus series. They are counted where the core decides what
// happens to a message, so they agree with the queue table; gauges that need a query (queue
// depth, cable state) are collected by the command that owns the store and the cable.
//
// Platform labels come from the queue key ("telegram:123" → "telegram"), so that a series
// never carries a user or chat id.
type Metrics struct {
	messages         *prometheus.CounterVec
	latency          *prometheus.HistogramVec
	rateLimitWaits   *prometheus.CounterVec
	rateLimitSeconds *prometheus.CounterVec
	unreachable      *prometheus.CounterVec
	leaseLost        *prometheus.CounterVec
	surveyWaits      *prometheus.CounterVec
	started          *prometheus.CounterVec
}

// How a worker got the job it started, counted in bridge_jobs_started_total.
const (
	// StartedByClaim is a job the dispatcher claimed for an idle worker.
	StartedByClaim = "claim"
	// StartedByEnqueue is a job its enqueue leased and handed to an idle worker.
	StartedByEnqueue = "enqueue"
	// StartedByCompletion is a job the completion of the worker's previous job leased for it: the
	// same key's next job, or else another key's head, claimed in the completion's transaction.
	StartedByCompletion = "completion"
)

// Reasons counted in bridge_lease_lost_total.
const (
	// LeaseTakenOver is an attempt whose message another worker had taken over.
	LeaseTakenOver = "taken_over"
	// LeaseNotRenewed is an attempt stopped because the database did not confirm its lease in
	// time.
	LeaseNotRenewed = "not_renewed"
)

// NewMetrics creates the core's series and registers them with reg. A nil reg leaves them
// unregistered, which is what a Core made without Options.Metrics uses.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_messages_total",
			Help: "Messages by direction (in: user to OneChat, out: agent to user), platform and result (queued, delivered, retried, failed, blocked, held).",
		}, []string{"direction", "platform", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bridge_delivery_seconds",
			Help:    "Time from a message entering the queue to its delivery, by direction and platform.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, []string{"direction", "platform"}),
		rateLimitWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_rate_limit_waits_total",
			Help: "Times a message waited because OneChat or the platform said to slow down, by direction and platform.",
		}, []string{"direction", "platform"}),
		rateLimitSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_rate_limit_wait_seconds_total",
			Help: "Seconds messages were told to wait by rate limits, by direction and platform.",
		}, []string{"direction", "platform"}),
		unreachable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_unreachable_marked_total",
			Help: "Times a user was marked unreachable (blocked the bot, closed DMs), by platform.",
		}, []string{"platform"}),
		leaseLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_lease_lost_total",
			Help: "Times a worker stopped an attempt or could not record it because it no longer held the message's lease, by direction and reason (taken_over, not_renewed).",
		}, []string{"direction", "reason"}),
		surveyWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_survey_waits_total",
			Help: "Times the close of a resolved conversation looked for OneChat's CSAT survey, found none yet, and waited (about a second each), by platform.",
		}, []string{"platform"}),
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bridge_jobs_started_total",
			Help: "Attempts workers started, by direction and how the worker got the message: claim (the dispatcher claimed it), enqueue (handed over as it was queued), completion (taken in the transaction that recorded the worker's previous message: the same user's or chat's next message, or else another waiting one).",
		}, []string{"direction", "by"}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.latency, m.rateLimitWaits, m.rateLimitSeconds, m.unreachable, m.leaseLost, m.surveyWaits, m.started)
	}
	return m
}

// platformOf returns the platform part of a queue key or chat reference ("telegram:42").
func platformOf(key string) string {
	p, _, _ := strings.Cut(key, ":")
	return p
}

// queued counts n new messages of one platform stored in the queue.
func (m *Metrics) queued(dir Direction, p Platform, n int) {
	if n > 0 {
		m.messages.WithLabelValues(string(dir), string(p), ResultQueued).Add(float64(n))
	}
}

// delivered counts a delivered job and observes how long it waited since it was queued.
func (m *Metrics) delivered(dir Direction, j *Job) {
	p := platformOf(j.Key)
	m.messages.WithLabelValues(string(dir), p, ResultDelivered).Inc()
	if !j.CreatedAt.IsZero() {
		m.latency.WithLabelValues(string(dir), p).Observe(time.Since(j.CreatedAt).Seconds())
	}
}

// retried counts a failed attempt that goes back to the queue.
func (m *Metrics) retried(dir Direction, j *Job) {
	m.messages.WithLabelValues(string(dir), platformOf(j.Key), ResultRetried).Inc()
}

// failed counts a job given up on; unreachable also counts the user as marked unreachable.
func (m *Metrics) failed(dir Direction, j *Job, unreachable bool) {
	p := platformOf(j.Key)
	m.messages.WithLabelValues(string(dir), p, ResultFailed).Inc()
	if unreachable {
		m.unreachable.WithLabelValues(p).Inc()
	}
}

// held counts n messages of a user over UserMaxPending.
func (m *Metrics) held(p Platform, n int) {
	m.messages.WithLabelValues(string(In), string(p), ResultHeld).Add(float64(n))
}

// blocked counts a message of a blocked contact, stored and not posted.
func (m *Metrics) blocked(dir Direction, j *Job) {
	m.messages.WithLabelValues(string(dir), platformOf(j.Key), ResultBlocked).Inc()
}

// startedJobs counts n attempts started, got the way by says.
func (m *Metrics) startedJobs(dir Direction, by string, n int) {
	if n > 0 {
		m.started.WithLabelValues(string(dir), by).Add(float64(n))
	}
}

// surveyWaited counts a close that waits for OneChat's CSAT survey.
func (m *Metrics) surveyWaited(p Platform) {
	m.surveyWaits.WithLabelValues(string(p)).Inc()
}

// lostLease counts an attempt that lost its lease.
func (m *Metrics) lostLease(dir Direction, reason string) {
	m.leaseLost.WithLabelValues(string(dir), reason).Inc()
}

// rateLimited counts a rate-limit wait of d.
func (m *Metrics) rateLimited(dir Direction, j *Job, d time.Duration) {
	p := platformOf(j.Key)
	m.rateLimitWaits.WithLabelValues(string(dir), p).Inc()
	m.rateLimitSeconds.WithLabelValues(string(dir), p).Add(max(d, 0).Seconds())
}
