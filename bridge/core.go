package bridge

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/texts"
)

// ResolvedPolicy says what the user's next message does after an agent resolved the
// conversation.
type ResolvedPolicy string

// Resolved policies.
const (
	// NewConversation opens a new conversation, as OneChat's own messaging channels do.
	NewConversation ResolvedPolicy = "new"
	// ReopenConversation posts into the resolved conversation, which reopens it.
	ReopenConversation ResolvedPolicy = "reopen"
)

// Options configure a Core. Store, OneChat, CableURL and at least one adapter are required.
type Options struct {
	Store   Store
	OneChat *onechat.Client
	// Application, when set (ONECHAT_API_ACCESS_TOKEN), lets the core tell agents what did not
	// reach the user in private notes, and set each new conversation's platform label and
	// custom attributes. Without it, the last failure goes into the contact's custom
	// attributes (bridge_last_failure, bridge_last_failure_at).
	Application *onechat.AppClient
	// Adapters build the adapters, each around the Host the core gives it.
	Adapters []AdapterBuilder
	// CableURL is the OneChat ActionCable endpoint, e.g. wss://chat.example.com/cable.
	CableURL string
	// Cable tunes the cable client; nil means defaults.
	Cable *onechat.CableOptions
	// Logger receives the core's logs; nil means none.
	Logger *zap.Logger
	// Metrics counts messages for /metrics; nil means unregistered series (NewMetrics(nil)).
	Metrics *Metrics
	// Texts is the message catalogue the core and the adapters (Host.Texts) speak from; nil
	// means the built-in texts with English for users and agents.
	Texts *texts.Catalogue

	// OnResolved is the resolved-conversation policy; empty means NewConversation.
	OnResolved ResolvedPolicy
	// ResolvedNotice says when a user is told that their ticket was closed; empty means
	// NoticeAuto (TicketEvent.ShowNotice).
	ResolvedNotice ResolvedNotice
	// CSATCommentWindow is how long after a user picked a CSAT rating their next text becomes
	// the survey's comment instead of a message. Default 10 min; negative turns it off.
	CSATCommentWindow time.Duration
	// SurveyWait is how long the close of a resolved conversation waits for the CSAT survey
	// OneChat sends after the resolve (when the inbox has CSAT on and the conversation has no
	// survey yet), so the user gets the survey instead of the closing notice, not both. The
	// chat's later messages wait behind it; the wait ends as soon as the survey exists.
	// Default 15 s; negative never waits.
	SurveyWait time.Duration
	// InboundWorkers and OutboundWorkers bound the parallelism per direction (across users;
	// one user's messages are always sent one at a time, in order). Default 8 each.
	InboundWorkers, OutboundWorkers int
	// JobTimeout bounds one attempt at one message. Default 60 s.
	JobTimeout time.Duration
	// Lease is how long a claimed message stays reserved for its worker without renewal; the
	// worker renews it every Lease/3 while it works, so after a crash the message is taken over
	// (by this process after a restart, or another one) within Lease. A worker whose renewals
	// fail stops its attempt at 2/3 of Lease, before anyone else may take the message over.
	// Default 15 s.
	Lease time.Duration
	// ShutdownGrace is how long in-flight messages may still finish after Run's context is
	// cancelled; then they are returned to the queue. Default 8 s.
	ShutdownGrace time.Duration
	// MaxOutboundAttempts bounds retries of transient failures towards a platform; after
	// that the message is marked failed. Inbound messages are retried until they succeed.
	// Default 12.
	MaxOutboundAttempts int
	// MinBackoff and MaxBackoff bound the exponential retry delay. Defaults 1 s and 5 min.
	MinBackoff, MaxBackoff time.Duration
	// OneChatRetryAfter is how long to wait after a OneChat 429, which says "Retry later"
	// without a Retry-After header (its default window is one minute); the per-conversation
	// flood limit waits twice as long. Default 10 s.
	OneChatRetryAfter time.Duration
	// IdleAfter is how long after its conversation was resolved a customer's cable
	// subscription is dropped (the user's next message subscribes again). Default 24 h.
	IdleAfter time.Duration
	// IdleSweep is how often idle subscriptions are looked for. Default 10 min.
	IdleSweep time.Duration
	// Retention is how long finished messages (their payloads hold what was written) and the
	// links between OneChat and platform messages are kept; older ones are deleted every
	// PruneEvery. Past it, an agent's edit or delete no longer reaches the platform, and a
	// reply to an older message carries no quote. Default 30 days; negative keeps everything.
	Retention time.Duration
	// PruneEvery is how often the retention sweep runs. Default 1 h.
	PruneEvery time.Duration
	// IdlePoll is how often idle workers look at the queue without being signalled, which
	// only matters when another process shares the database. Default 2 s.
	IdlePoll time.Duration

	// InstanceID names this instance among those sharing the store, in logs, /readyz and the
	// store's leases and instances tables. Empty means the host name (the container id
	// under Docker). A random suffix per Run keeps two processes given the same id apart.
	InstanceID string
	// LeaseTTL is how long a role (a singleton adapter, a cable partition) stays held without
	// renewal, and LeaseRenew how often it is renewed and free roles are looked for: a dead
	// instance's roles are taken over within LeaseTTL + LeaseRenew. Defaults 10 s and 3 s;
	// LeaseRenew is cut to LeaseTTL/3 when it is longer than LeaseTTL/2.
	LeaseTTL, LeaseRenew time.Duration

	// Blocklist names contacts (identifiers such as telegram:123) whose messages are stored
	// but never posted, for OneChat installations without blocking; BlocklistFile adds those
	// of a file (one a line, # comments), read again when it changes. BlockedNotice, when set,
	// is sent once to a blocked user ("default": the catalogue's texts.Blocked in the user's
	// language); empty sends them nothing.
	Blocklist     []string
	BlocklistFile string
	BlockedNotice string
	// BlockRecheck is how often a blocked contact's OneChat record is read again while they
	// write (an unblock takes effect within it), and BlocklistReread how often BlocklistFile
	// is looked at for changes. Defaults 30 s and 5 s.
	BlockRecheck, BlocklistReread time.Duration
	// NewConversationsPerDay bounds the conversations opened for one user in 24 hours (after
	// a resolve, with the NewConversation policy); beyond it the user's messages go to their
	// latest conversation, which reopens it. Default 20; negative means no bound.
	NewConversationsPerDay int
	// UserMaxPending is how many of one user's messages may wait in the inbound queue before
	// the rest are held: stored, counted as held, and posted in order only as the user's
	// backlog drains; the user is told once per burst to slow down (SlowDownNotice). Default
	// 200.
	UserMaxPending int
	// SlowDownNotice is the text that tells a user their messages are held; empty means the
	// catalogue's (texts.SlowDown) in the user's language.
	SlowDownNotice string
}

// Core routes messages between adapters and OneChat. It implements Inbox for adapters and
// onechat.CableHandler for the cable.
type Core struct {
	opts     Options
	store    Store
	oc       *onechat.Client
	app      *onechat.AppClient // nil without ONECHAT_API_ACCESS_TOKEN
	cable    *onechat.Cable
	log      *zap.Logger
	adapters map[Platform]Adapter
	// adapterList holds the adapters in the order of Options.Adapters.
	adapterList []Adapter

	wake [2]*signal // indexed by dirIndex

	typing chan typingReq

	wantedMu sync.Mutex
	wanted   map[string]time.Time // tokens subscribed because their user just wrote

	catchupMu      sync.Mutex
	catchupPending map[string]catchupSet // pubsub token → conversations to catch up (0: the current one)
	catchupBusy    map[string]struct{}   // pubsub tokens a catch-up worker is reading now
	statusPending  map[int64]string      // conversation → status the cable announced, recorded after its catch-up
	refresh        map[string]struct{}   // pubsub tokens whose contact session must be read again
	catchupWake    *signal

	// watched holds the contacts whose new conversation is being opened (eventWatch).
	watched eventWatches

	roles *roleManager // this instance's roles among those sharing the store (roles.go)

	enqueues *enqueueGroup // every enqueue goes through it (enqueue.go)

	contactAttrsMu sync.Mutex
	contactAttrs   map[int64]contactAttrsSet // customer id → the Inbound.ContactAttributes set on the contact

	blocks blocks // blocked contacts (admission.go)
	// blocklistText and blocklistMod are the blocklist file as last read (blocklistLoop's).
	blocklistText string
	blocklistMod  time.Time
	// toldMu guards told: when users over UserMaxPending were last told to slow down.
	toldMu sync.Mutex
	told   map[string]time.Time

	// inboxID is the numeric id of the OneChat inbox the bridge's conversations are in, 0 until
	// known. The Client API names the inbox only by its identifier, so the id is learned from
	// the conversations the bridge opens and reads (learnInbox); adoption compares with it.
	inboxID atomic.Int64

	texts *texts.Catalogue

	// csatOn is the inbox's csat_survey_enabled as read at csatAt (csatEnabled).
	csatMu sync.Mutex
	csatOn bool
	csatAt time.Time

	languagesMu sync.Mutex
	languages   map[UserRef]storedLanguage // users' languages this process stored (language.go)
}

// New checks opts and builds a Core. Nothing runs until Run.
func New(opts Options) (*Core, error) {
	if opts.Store == nil {
		return nil, errors.New("bridge: no store")
	}
	if opts.OneChat == nil {
		return nil, errors.New("bridge: no onechat client")
	}
	if opts.CableURL == "" {
		return nil, errors.New("bridge: no cable url")
	}
	if len(opts.Adapters) == 0 {
		return nil, errors.New("bridge: no adapter")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.Texts == nil {
		opts.Texts = texts.Builtin()
	}
	if opts.OnResolved == "" {
		opts.OnResolved = NewConversation
	}
	if opts.OnResolved != NewConversation && opts.OnResolved != ReopenConversation {
		return nil, fmt.Errorf("bridge: unknown resolved policy %q", opts.OnResolved)
	}
	switch opts.ResolvedNotice {
	case "":
		opts.ResolvedNotice = NoticeAuto
	case NoticeAuto, NoticeAlways, NoticeNever:
	default:
		return nil, fmt.Errorf("bridge: unknown resolved notice setting %q", opts.ResolvedNotice)
	}
	setDefault(&opts.CSATCommentWindow, 10*time.Minute)
	setDefault(&opts.SurveyWait, 15*time.Second)
	setDefault(&opts.InboundWorkers, 8)
	setDefault(&opts.OutboundWorkers, 8)
	setDefault(&opts.MaxOutboundAttempts, 12)
	setDefault(&opts.JobTimeout, 60*time.Second)
	setDefault(&opts.ShutdownGrace, 8*time.Second)
	setDefault(&opts.Lease, 15*time.Second)
	setDefault(&opts.MinBackoff, time.Second)
	setDefault(&opts.MaxBackoff, 5*time.Minute)
	setDefault(&opts.IdlePoll, 2*time.Second)
	setDefault(&opts.IdleAfter, 24*time.Hour)
	setDefault(&opts.IdleSweep, 10*time.Minute)
	setDefault(&opts.OneChatRetryAfter, 10*time.Second)
	setDefault(&opts.Retention, 30*24*time.Hour)
	setDefault(&opts.PruneEvery, time.Hour)
	setDefault(&opts.BlockRecheck, 30*time.Second)
	setDefault(&opts.NewConversationsPerDay, 20)
	setDefault(&opts.UserMaxPending, 200)
	setDefault(&opts.BlocklistReread, 5*time.Second)

	wake := [2]*signal{newSignal(), newSignal()}
	c := &Core{
		opts:           opts,
		store:          opts.Store,
		oc:             opts.OneChat,
		app:            opts.Application,
		log:            opts.Logger,
		adapters:       make(map[Platform]Adapter),
		wake:           wake,
		catchupPending: make(map[string]catchupSet),
		catchupBusy:    make(map[string]struct{}),
		statusPending:  make(map[int64]string),
		refresh:        make(map[string]struct{}),
		catchupWake:    newSignal(),
		typing:         make(chan typingReq, 64),
		wanted:         make(map[string]time.Time),
		enqueues:       &enqueueGroup{store: opts.Store, hands: [2]*handoff{{}, {}}, lease: opts.Lease, wake: wake, metrics: opts.Metrics},
		blocks:         blocks{contact: make(map[int64]blockState)},
		told:           make(map[string]time.Time),
		texts:          opts.Texts,
		languages:      make(map[UserRef]storedLanguage),
	}
	text, mod, err := c.readBlocklistFile()
	if err != nil {
		return nil, fmt.Errorf("bridge: blocklist file: %w", err)
	}
	c.loadBlocklist(text)
	c.blocklistText, c.blocklistMod = text, mod
	var errs []error
	for _, build := range opts.Adapters {
		h := &host{c: c}
		a, err := build(h)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if a.Platform() == "" || strings.ContainsAny(string(a.Platform()), ": ") {
			errs = append(errs, fmt.Errorf("bridge: adapter platform %q is not a name", a.Platform()))
			continue
		}
		if _, dup := c.adapters[a.Platform()]; dup {
			errs = append(errs, fmt.Errorf("bridge: two adapters for %s", a.Platform()))
			continue
		}
		h.platform = a.Platform()
		c.adapters[a.Platform()] = a
		c.adapterList = append(c.adapterList, a)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cableOpts := onechat.CableOptions{}
	if opts.Cable != nil {
		cableOpts = *opts.Cable
	}
	if cableOpts.Logger == nil {
		cableOpts.Logger = opts.Logger.Named("cable")
	}
	c.cable = onechat.NewCable(opts.CableURL, c, &cableOpts)
	c.roles = newRoleManager(c)
	return c, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Cable returns the core's cable client, for health checks.
func (c *Core) Cable() *onechat.Cable { return c.cable }

// Run runs the adapters, the cable, the queue workers and the catch-up loop until ctx is
// cancelled, then drains in-flight messages for up to ShutdownGrace. It returns only after
// every goroutine it started has exited. An adapter that fails stops the whole core.
func (c *Core) Run(ctx context.Context) error {
	// work is cancelled ShutdownGrace after ctx, so in-flight messages can finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.NewTimer(c.opts.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-work.Done():
		}
	})
	defer stopGrace()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.cable.Run(gctx) })
	for _, a := range c.adapterList {
		if needsSingleton(a) {
			continue // run by the role manager while this instance holds the adapter's role
		}
		g.Go(func() error {
			if err := a.Run(gctx); err != nil && gctx.Err() == nil {
				return fmt.Errorf("%s adapter: %w", a.Platform(), err)
			}
			return nil
		})
	}
	// The role manager runs the singleton adapters and subscribes the customers of the cable
	// partitions this instance holds (subscribeKnown); other instances announce customers
	// whose partition may be held here.
	g.Go(func() error { return c.roles.run(gctx) })
	g.Go(func() error { return c.store.ListenCustomers(gctx, c.roles.announce) })
	g.Go(func() error { return c.catchupLoop(gctx) })
	g.Go(func() error { return c.typingLoop(gctx) })
	g.Go(func() error { return c.idleLoop(gctx) })
	g.Go(func() error { return c.pruneLoop(gctx) })
	g.Go(func() error { return c.blocklistLoop(gctx) })
	g.Go(func() error {
		// Wakes this process's workers when any process sharing the store queues work.
		return c.store.Listen(gctx, func(d Direction) { c.wake[dirIndex(d)].notify() })
	})

	var workers sync.WaitGroup
	workers.Go(func() { c.work(gctx, work, In, c.opts.InboundWorkers, c.handleInbound) })
	workers.Go(func() { c.work(gctx, work, Out, c.opts.OutboundWorkers, c.handleOutbound) })
	err := g.Wait()
	workers.Wait()
	return err
}

// subscribeKnown subscribes the cable to the customers of the given cable partitions (ones
// this instance just took, or all it holds on a periodic rescan) whose conversations are not
// idle, so agent replies reach users who wrote before a restart or a takeover. Each
// subscription's confirmation brings the REST catch-up, as after a reconnect.
func (c *Core) subscribeKnown(ctx context.Context, partitions []int) error {
	since := time.Now().Add(-c.opts.IdleAfter)
	n := 0
	for after := int64(0); ; {
		customers, err := c.store.PartitionCustomers(ctx, CablePartitions, partitions, since, after, customerPage)
		if err != nil {
			return fmt.Errorf("load customers: %w", err)
		}
		for _, cu := range customers {
			if c.roles.track(cu, false) {
				n++
			}
		}
		if len(customers) < customerPage {
			break
		}
		after = customers[len(customers)-1].ID
	}
	c.log.Debug("subscribed known customers", zap.Int("partitions", len(partitions)), zap.Int("customers", n))
	return nil
}

// Deliver stores the messages in the inbound queue, keyed by user so each
// user's messages reach OneChat in order, and wakes the inbound workers.
func (c *Core) Deliver(ctx context.Context, cur Cursor, msgs ...Inbound) error {
	jobs := make([]NewJob, 0, len(msgs))
	for _, m := range msgs {
		if m.User.Platform == "" || m.User.ID == "" || m.Chat.ID == "" || m.MessageID == "" {
			return fmt.Errorf("deliver: inbound message without user, chat or message id")
		}
		m = withLanguage(m)
		payload, err := jsonMarshal(m)
		if err != nil {
			return fmt.Errorf("deliver: %w", err)
		}
		jobs = append(jobs, NewJob{Direction: In, Key: m.User.Identifier(), Dedup: m.DedupKey(), Payload: payload})
	}
	n, err := c.enqueues.enqueue(ctx, JobBatch{Cursor: cur, Jobs: jobs})
	if err != nil {
		return fmt.Errorf("deliver: %w", err)
	}
	if n > 0 {
		c.opts.Metrics.queued(In, msgs[0].User.Platform, n)
		c.admitPending(ctx, msgs)
	}
	c.rememberLanguages(ctx, msgs)
	return nil
}

// Adapters returns the adapters the core built, in the order of Options.Adapters.
func (c *Core) Adapters() []Adapter { return slices.Clone(c.adapterList) }
