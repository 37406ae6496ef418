package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/pprof"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/onechat"
)

// readyTimeout bounds each readiness check, so a hung dependency makes /readyz answer 503
// quickly instead of timing out the prober.
const readyTimeout = 2 * time.Second

// readyCacheTTL is how long /readyz reuses its answer about OneChat: probes every second from
// several places must not spend OneChat's request budget more than once per interval.
const readyCacheTTL = 5 * time.Second

// errNoBudget says the probe's request did not get its turn in the client's budget in time:
// the budget is busy with users' and agents' requests, which says nothing against OneChat.
var errNoBudget = errors.New("request budget busy")

// cachedCheck runs check at most once per ttl and answers with its last result in between;
// concurrent probes share one run. When the budget is too busy to let the probe through, the
// last result stands: a flood of traffic is no reason to take the instance out of service.
func cachedCheck(ttl time.Duration, now func() time.Time, check func(ctx context.Context) error) func(ctx context.Context) error {
	sem := make(chan struct{}, 1)
	var (
		at   time.Time
		last error
	)
	return func(ctx context.Context) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return errors.New("check timed out")
		}
		defer func() { <-sem }()
		if !at.IsZero() && now().Sub(at) < ttl {
			return last
		}
		err := check(ctx)
		if errors.Is(err, errNoBudget) {
			if !at.IsZero() {
				return last
			}
			return err
		}
		at, last = now(), err
		return err
	}
}

// readyCheck is one dependency /readyz looks at. check returns nil when it is up, or an error
// whose text says what is wrong without secrets.
type readyCheck struct {
	name  string
	check func(ctx context.Context) error
}

// readinessChecks lists what the bridge needs to do its work: Postgres, the OneChat inbox, the
// cable, and every adapter that can report its own health (bridge.HealthReporter).
func readinessChecks(store *postgres.Store, oc *onechat.Client, core *bridge.Core, adapters []bridge.Adapter) []readyCheck {
	checks := []readyCheck{
		{"postgres", func(ctx context.Context) error {
			if store.Ping(ctx) != nil {
				// pgx's text may name the user and host; the operator finds details in the logs.
				return errors.New("not answering")
			}
			return nil
		}},
		{"onechat", cachedCheck(readyCacheTTL, time.Now, func(ctx context.Context) error {
			// A probe's request goes after every user's and agent's (it waits its turn in the
			// client's budget): an operator's check must never hold back the traffic.
			_, err := oc.Inbox(onechat.WithPriority(ctx, onechat.PriorityProbe))
			var apiErr *onechat.APIError
			switch {
			case err == nil:
				return nil
			case errors.Is(err, onechat.ErrNoBudget):
				return errNoBudget
			case errors.As(err, &apiErr):
				return apiErr // its text carries the status only, never the URL
			default:
				return errors.New("not reachable")
			}
		})},
		{"cable", func(context.Context) error {
			if !core.Cable().Connected() {
				return errors.New("not connected")
			}
			return nil
		}},
	}
	for _, a := range adapters {
		if hr, ok := a.(bridge.HealthReporter); ok {
			checks = append(checks, readyCheck{string(a.Platform()), func(context.Context) error {
				// A standby instance does not run a singleton adapter (another instance holds
				// its role), so its health says nothing about this instance.
				roles := core.Roles()
				if !slices.Contains(roles.Running, a.Platform()) && !slices.Contains(roles.Shared, a.Platform()) {
					return nil
				}
				return hr.Health()
			}})
		}
	}
	checks = append(checks, readyCheck{"roles", func(context.Context) error {
		if !core.Roles().Coordinated {
			return errors.New("not coordinated with the other instances through Postgres yet")
		}
		return nil
	}})
	return checks
}

// rolesBody is what /readyz says of this instance's roles among those sharing the database.
type rolesBody struct {
	Instance    string   `json:"instance"`
	Running     []string `json:"running"`
	Standby     []string `json:"standby"`
	Shared      []string `json:"shared"`
	Partitions  int      `json:"cable_partitions"`
	Instances   int      `json:"instances"`
	Coordinated bool     `json:"coordinated"`
}

func rolesOf(s bridge.RolesStatus) *rolesBody {
	names := func(ps []bridge.Platform) []string {
		out := make([]string, 0, len(ps))
		for _, p := range ps {
			out = append(out, string(p))
		}
		return out
	}
	return &rolesBody{
		Instance: s.Instance, Running: names(s.Running), Standby: names(s.Standby), Shared: names(s.Shared),
		Partitions: len(s.Partitions), Instances: s.Instances, Coordinated: s.Coordinated,
	}
}

// readyBody is /readyz's JSON answer. Down names each dependency that is not up and why.
type readyBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Down   map[string]string `json:"down,omitempty"`
	Roles  *rolesBody        `json:"roles,omitempty"`
}

// adminMaxHeaderBytes bounds the request headers the admin listener reads: probes and
// Prometheus send a few hundred bytes.
const adminMaxHeaderBytes = 16 << 10

// adminServer is the admin listener's server. Its timeouts cut off a client that trickles its
// request or keeps idle connections open, so a reachable admin port cannot be held by one; the
// write timeout leaves /readyz its readyTimeout and a large /metrics scrape its time.
func adminServer(h http.Handler, logger *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      readyTimeout + 20*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ErrorLog:          zap.NewStdLog(logger.Named("admin_server")),
	}
}

// adminHandler serves /livez (the process answers; for restarts), /readyz (every dependency is
// up; 503 with what is down otherwise) and /metrics from reg; with withPprof also Go's runtime
// profiles under /debug/pprof/ (BRIDGE_PPROF).
func adminHandler(checks []readyCheck, reg *prometheus.Registry, roles func() bridge.RolesStatus, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		body := readyBody{Status: "ok", Checks: map[string]string{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				err := c.check(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					body.Checks[c.name] = "down"
					if body.Down == nil {
						body.Down = map[string]string{}
					}
					body.Down[c.name] = err.Error()
					return
				}
				body.Checks[c.name] = "ok"
			})
		}
		wg.Wait()
		if roles != nil {
			body.Roles = rolesOf(roles())
		}
		w.Header().Set("Content-Type", "application/json")
		if len(body.Down) > 0 {
			body.Status = "unavailable"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func collectorsGo() prometheus.Collector { return collectors.NewGoCollector() }

func collectorsProcess() prometheus.Collector {
	return collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})
}

// statsTimeout bounds the store query of one scrape.
const statsTimeout = 3 * time.Second

// statsCollector reads the gauges that need a query or a snapshot at scrape time: queue depth
// and age from Postgres, unreachable users, database pool use, and the cable's connections and
// subscriptions.
type statsCollector struct {
	store *postgres.Store
	cable *onechat.Cable
	log   *zap.Logger

	postgresUp, queueDepth, queueAge, unreachable, dbConns *prometheus.Desc
	cableConns, cableSubs, cableReconnects                 *prometheus.Desc
}

func newStatsCollector(store *postgres.Store, cable *onechat.Cable, log *zap.Logger) *statsCollector {
	d := prometheus.NewDesc
	return &statsCollector{
		store: store, cable: cable, log: log,
		postgresUp:      d("bridge_postgres_up", "1 when the scrape's queue query succeeded, else 0.", nil, nil),
		queueDepth:      d("bridge_queue_depth", "Unfinished messages in the queue by direction and state (pending, running).", []string{"direction", "state"}, nil),
		queueAge:        d("bridge_queue_oldest_age_seconds", "Age of the oldest unfinished message per direction; 0 when the queue is empty.", []string{"direction"}, nil),
		unreachable:     d("bridge_unreachable_users", "Users currently marked unreachable (blocked the bot, closed DMs) by platform.", []string{"platform"}, nil),
		dbConns:         d("bridge_db_connections", "Database pool connections by state (acquired, idle).", []string{"state"}, nil),
		cableConns:      d("bridge_cable_connections", "OneChat cable websocket connections by state (connected, disconnected).", []string{"state"}, nil),
		cableSubs:       d("bridge_cable_subscriptions", "Cable subscriptions (one per contact session) by state (confirmed, pending, silent: OneChat never confirms it, rejected).", []string{"state"}, nil),
		cableReconnects: d("bridge_cable_reconnects_total", "Cable dials after the first one.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.postgresUp, c.queueDepth, c.queueAge, c.unreachable, c.dbConns, c.cableConns, c.cableSubs, c.cableReconnects} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		c.log.Warn("metrics: queue statistics unavailable", zap.Error(err))
		gauge(c.postgresUp, 0)
	} else {
		gauge(c.postgresUp, 1)
		for _, q := range st.Queue {
			gauge(c.queueDepth, float64(q.Pending), string(q.Direction), bridge.JobPending)
			gauge(c.queueDepth, float64(q.Running), string(q.Direction), bridge.JobRunning)
			gauge(c.queueAge, q.OldestAge.Seconds(), string(q.Direction))
		}
		platforms := make([]string, 0, len(st.Unreachable))
		for p := range st.Unreachable {
			platforms = append(platforms, string(p))
		}
		sort.Strings(platforms)
		for _, p := range platforms {
			gauge(c.unreachable, float64(st.Unreachable[bridge.Platform(p)]), p)
		}
	}
	pool := c.store.Stat()
	gauge(c.dbConns, float64(pool.AcquiredConns()), "acquired")
	gauge(c.dbConns, float64(pool.IdleConns()), "idle")

	cs := c.cable.Stats()
	gauge(c.cableConns, float64(cs.Connections), "connected")
	gauge(c.cableConns, float64(max(cs.Sockets-cs.Connections, 0)), "disconnected")
	gauge(c.cableSubs, float64(cs.Confirmed), "confirmed")
	gauge(c.cableSubs, float64(cs.Pending), "pending")
	gauge(c.cableSubs, float64(cs.Silent), "silent")
	gauge(c.cableSubs, float64(cs.Rejected), "rejected")
	ch <- prometheus.MustNewConstMetric(c.cableReconnects, prometheus.CounterValue, float64(cs.Reconnects))
}
