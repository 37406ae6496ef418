package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/onechat"
)

// TuningSettings are knobs most installations never touch: worker counts, retry timing, the
// OneChat request budget and the cable pool's shape. The defaults suit OneChat's default rate
// limit (3000 requests/min per IP).
type TuningSettings struct {
	InboundWorkers  string `env:"BRIDGE_INBOUND_WORKERS" envDefault:"8"`
	OutboundWorkers string `env:"BRIDGE_OUTBOUND_WORKERS" envDefault:"8"`
	JobTimeout      string `env:"BRIDGE_JOB_TIMEOUT" envDefault:"60s"`
	Lease           string `env:"BRIDGE_LEASE" envDefault:"15s"`
	MinBackoff      string `env:"BRIDGE_MIN_BACKOFF" envDefault:"1s"`
	MaxBackoff      string `env:"BRIDGE_MAX_BACKOFF" envDefault:"5m"`
	OneChatRetry    string `env:"BRIDGE_ONECHAT_RETRY_AFTER" envDefault:"10s"`
	IdleAfter       string `env:"BRIDGE_IDLE_AFTER" envDefault:"24h"`
	IdleSweep       string `env:"BRIDGE_IDLE_SWEEP" envDefault:"10m"`
	Retention       string `env:"BRIDGE_RETENTION" envDefault:"720h"`
	// ResolvedNotice says when users are told their ticket closed (auto, always, never);
	// CSATCommentWindow how long after a CSAT rating the user's next text is its comment.
	ResolvedNotice    string `env:"BRIDGE_RESOLVED_NOTICE" envDefault:"auto"`
	CSATCommentWindow string `env:"BRIDGE_CSAT_COMMENT_WINDOW" envDefault:"10m"`
	RequestsPerSec    string `env:"ONECHAT_REQUESTS_PER_SECOND" envDefault:"45"`
	RequestBurst      string `env:"ONECHAT_REQUEST_BURST" envDefault:"5"`
	CablePerSocket    string `env:"ONECHAT_CABLE_MAX_PER_CONNECTION" envDefault:"500"`
	CableSubscribeHz  string `env:"ONECHAT_CABLE_SUBSCRIBE_RATE" envDefault:"50"`
	// InstanceID names this instance among several sharing the database (default: host name);
	// LeaseTTL and LeaseRenew time the roles they hand over (see docs/operations.md).
	InstanceID string `env:"BRIDGE_INSTANCE_ID"`
	LeaseTTL   string `env:"BRIDGE_LEASE_TTL" envDefault:"10s"`
	LeaseRenew string `env:"BRIDGE_LEASE_RENEW" envDefault:"3s"`
	// Admission control (docs/operations.md): per-user bounds and blocking.
	UserMaxPending     string `env:"BRIDGE_USER_MAX_PENDING" envDefault:"200"`
	UserNewConvsPerDay string `env:"BRIDGE_USER_NEW_CONVERSATIONS_PER_DAY" envDefault:"20"`
	SlowDownNotice     string `env:"BRIDGE_SLOW_DOWN_NOTICE"`
	Blocklist          string `env:"BRIDGE_BLOCKLIST"`
	BlocklistFile      string `env:"BRIDGE_BLOCKLIST_FILE"`
	BlockedNotice      string `env:"BRIDGE_BLOCKED_NOTICE"`

	parsed tuning
}

type tuning struct {
	inboundWorkers, outboundWorkers         int
	jobTimeout, lease, minBackoff, maxBack  time.Duration
	oneChatRetry, idleAfter, idleSweep      time.Duration
	retention                               time.Duration
	requestsPerSec                          float64
	requestBurst, cablePerSocket, cableRate int
	leaseTTL, leaseRenew                    time.Duration
	userMaxPending, userNewConvsPerDay      int
	blocklist                               []string
	csatCommentWindow                       time.Duration
}

// validate parses every knob, one error per bad variable.
func (s *TuningSettings) validate() []error {
	var errs []error
	count := func(name, v string, min, max int, dst *int) {
		n, err := strconv.Atoi(v)
		if err != nil || n < min || n > max {
			errs = append(errs, fmt.Errorf("%s: must be a whole number from %d to %d, got %q", name, min, max, v))
			return
		}
		*dst = n
	}
	dur := func(name, v string, min, max time.Duration, dst *time.Duration) {
		d, err := time.ParseDuration(v)
		if err != nil || d < min || d > max {
			errs = append(errs, fmt.Errorf("%s: must be a duration from %s to %s, got %q", name, min, max, v))
			return
		}
		*dst = d
	}
	p := &s.parsed
	count("BRIDGE_INBOUND_WORKERS", s.InboundWorkers, 1, 1024, &p.inboundWorkers)
	count("BRIDGE_OUTBOUND_WORKERS", s.OutboundWorkers, 1, 1024, &p.outboundWorkers)
	dur("BRIDGE_JOB_TIMEOUT", s.JobTimeout, time.Second, time.Hour, &p.jobTimeout)
	dur("BRIDGE_LEASE", s.Lease, 100*time.Millisecond, time.Hour, &p.lease)
	dur("BRIDGE_MIN_BACKOFF", s.MinBackoff, time.Millisecond, time.Hour, &p.minBackoff)
	dur("BRIDGE_MAX_BACKOFF", s.MaxBackoff, time.Millisecond, 24*time.Hour, &p.maxBack)
	dur("BRIDGE_ONECHAT_RETRY_AFTER", s.OneChatRetry, time.Millisecond, time.Hour, &p.oneChatRetry)
	dur("BRIDGE_IDLE_AFTER", s.IdleAfter, time.Minute, 365*24*time.Hour, &p.idleAfter)
	dur("BRIDGE_IDLE_SWEEP", s.IdleSweep, time.Second, 24*time.Hour, &p.idleSweep)
	if s.Retention == "0" {
		p.retention = -1 // keep everything
	} else {
		dur("BRIDGE_RETENTION", s.Retention, time.Hour, 100*365*24*time.Hour, &p.retention)
	}
	switch bridge.ResolvedNotice(s.ResolvedNotice) {
	case bridge.NoticeAuto, bridge.NoticeAlways, bridge.NoticeNever:
	default:
		errs = append(errs, fmt.Errorf("BRIDGE_RESOLVED_NOTICE: must be auto, always or never, got %q", s.ResolvedNotice))
	}
	if s.CSATCommentWindow == "0" {
		p.csatCommentWindow = -1 // off
	} else {
		dur("BRIDGE_CSAT_COMMENT_WINDOW", s.CSATCommentWindow, time.Second, 14*24*time.Hour, &p.csatCommentWindow)
	}
	if p.minBackoff > p.maxBack && p.maxBack > 0 {
		errs = append(errs, fmt.Errorf("BRIDGE_MIN_BACKOFF: must not exceed BRIDGE_MAX_BACKOFF"))
	}
	if r, err := strconv.ParseFloat(s.RequestsPerSec, 64); err != nil || r == 0 {
		errs = append(errs, fmt.Errorf("ONECHAT_REQUESTS_PER_SECOND: must be a positive number (or negative for no limit), got %q", s.RequestsPerSec))
	} else {
		p.requestsPerSec = r
	}
	count("ONECHAT_REQUEST_BURST", s.RequestBurst, 1, 10000, &p.requestBurst)
	count("ONECHAT_CABLE_MAX_PER_CONNECTION", s.CablePerSocket, 1, 100000, &p.cablePerSocket)
	count("ONECHAT_CABLE_SUBSCRIBE_RATE", s.CableSubscribeHz, 1, 100000, &p.cableRate)
	dur("BRIDGE_LEASE_TTL", s.LeaseTTL, 3*time.Second, 10*time.Minute, &p.leaseTTL)
	dur("BRIDGE_LEASE_RENEW", s.LeaseRenew, 100*time.Millisecond, 10*time.Minute, &p.leaseRenew)
	if p.leaseTTL > 0 && p.leaseRenew > p.leaseTTL/3 {
		errs = append(errs, fmt.Errorf("BRIDGE_LEASE_RENEW: must be at most a third of BRIDGE_LEASE_TTL (%s)", p.leaseTTL))
	}
	count("BRIDGE_USER_MAX_PENDING", s.UserMaxPending, 1, 1_000_000, &p.userMaxPending)
	count("BRIDGE_USER_NEW_CONVERSATIONS_PER_DAY", s.UserNewConvsPerDay, 1, 100_000, &p.userNewConvsPerDay)
	p.blocklist = nil
	for _, id := range bridge.ParseBlocklist(s.Blocklist) {
		if platform, user, ok := strings.Cut(id, ":"); !ok || platform == "" || user == "" {
			errs = append(errs, fmt.Errorf("BRIDGE_BLOCKLIST: %q is not a contact identifier like telegram:123", id))
			continue
		}
		p.blocklist = append(p.blocklist, id)
	}
	if len(s.SlowDownNotice) > 1000 || len(s.BlockedNotice) > 1000 {
		errs = append(errs, fmt.Errorf("BRIDGE_SLOW_DOWN_NOTICE, BRIDGE_BLOCKED_NOTICE: at most 1000 characters"))
	}
	if len(s.InstanceID) > 100 {
		errs = append(errs, fmt.Errorf("BRIDGE_INSTANCE_ID: must be at most 100 characters"))
	}
	return errs
}

// apply copies the knobs into the core's options.
func (s *TuningSettings) apply(o *bridge.Options) {
	p := s.parsed
	o.InboundWorkers, o.OutboundWorkers = p.inboundWorkers, p.outboundWorkers
	o.JobTimeout, o.Lease = p.jobTimeout, p.lease
	o.MinBackoff, o.MaxBackoff = p.minBackoff, p.maxBack
	o.OneChatRetryAfter, o.IdleAfter, o.IdleSweep = p.oneChatRetry, p.idleAfter, p.idleSweep
	o.Retention = p.retention
	o.ResolvedNotice, o.CSATCommentWindow = bridge.ResolvedNotice(s.ResolvedNotice), p.csatCommentWindow
	if o.Cable == nil {
		o.Cable = &onechat.CableOptions{}
	}
	o.Cable.MaxPerConnection, o.Cable.SubscribeRate = p.cablePerSocket, p.cableRate
	o.InstanceID, o.LeaseTTL, o.LeaseRenew = s.InstanceID, p.leaseTTL, p.leaseRenew
	o.UserMaxPending, o.NewConversationsPerDay = p.userMaxPending, p.userNewConvsPerDay
	o.SlowDownNotice, o.BlockedNotice = s.SlowDownNotice, s.BlockedNotice
	o.Blocklist, o.BlocklistFile = p.blocklist, s.BlocklistFile
	if s.BlocklistFile != "" {
		// BRIDGE_BLOCKLIST was read from the file at start; the core reads the file itself,
		// again whenever it changes, so a line removed unblocks.
		o.Blocklist = nil
	}
}
