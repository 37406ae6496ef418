// Package discord connects Discord users to the bridge: direct messages by default, and in
// support-channel mode a private thread per ticket opened from a "Contact support" panel.
//
// Inbound, Run holds one gateway connection (HELLO, IDENTIFY or RESUME, heartbeats) that it
// replaces when the gateway goes silent, and hands the events to one loop, so that events are
// handled in the order Discord sent them. After every READY or RESUMED the loop reads each known
// DM channel and ticket thread over REST after the last message delivered, so a bridge that was
// down loses nothing. Attachments are not downloaded into the queue: their Ref names the
// message, and OpenAttachment fetches a fresh CDN link when the core streams them.
//
// Outbound, Send never sleeps on a rate limit: a 429 is returned as bridge.RateLimited with
// Discord's retry_after. Mentions in agent text never ping. The bot token is a secret: it is only
// sent in the Authorization header and the IDENTIFY/RESUME payloads, never logged or returned
// in an error.
//
// The adapter speaks the gateway protocol itself (over coder/websocket) and uses discordgo for
// its types. discordgo's Session would do the wire work, but its Open holds a lock through
// reads without a deadline (a gateway that never says HELLO hangs it), its reconnect goroutines
// have no owner to wait for, and its REST layer sleeps on 429s; the bridge needs all three the
// other way round.
package discord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/bridge"
)

// DefaultAPIURL is Discord's REST API, version 10.
const DefaultAPIURL = "https://discord.com/api/v10"

// Platform is the platform name Discord users and chats carry: contact identifiers read
// "discord:<user id>".
const Platform bridge.Platform = "discord"

// DefaultCDNURL serves sticker images.
const DefaultCDNURL = "https://media.discordapp.net"

// Cursor names. Cursors are durable and never move backwards, which fits what the adapter
// keeps: the last message delivered per channel, and ids that never change once set (a
// channel's owner) or only grow (a user's newest ticket thread, the newest panel message).
const (
	cursorChannel = "discord.channel." // + channel id: last message id delivered
	cursorOwner   = "discord.owner."   // + DM channel or thread id: the user it belongs to
	cursorTicket  = "discord.ticket."  // + user id: their ticket thread
	cursorPanel   = "discord.panel."   // + support channel id: the panel message
)

// eventBuffer is how many dispatches may wait for the event loop before the gateway reader
// blocks (and, after two heartbeat intervals, the connection is replaced).
const eventBuffer = 4096

// Adapter is the Discord side of the bridge. Send, Edit, Delete, Typing and OpenAttachment may
// be called concurrently with each other and with Run.
type Adapter struct {
	rest         *rest
	client       *http.Client
	cdnURL       string
	intents      int
	support      string
	staffRole    string
	helloTimeout time.Duration
	maxUpload    int64
	maxDownload  int64
	minAge       time.Duration
	// fileTimeout bounds one attempt to send a message with files.
	fileTimeout time.Duration
	// now is the clock for account ages; tests replace it.
	now         func() time.Time
	log         *zap.Logger
	backoff     retry.Backoff
	wait        func(ctx context.Context, d time.Duration) error
	invalidWait func() time.Duration

	botID atomic.Pointer[string]

	healthMu sync.Mutex
	health   error
	// observeHealth, when set (by tests), is called after every health change.
	observeHealth func(error)

	// host is what the core offers the adapter, on every instance.
	host bridge.Host

	chatsMu  sync.Mutex
	owners   map[string]string // channel id → user id, for DM channels and ticket threads
	notOurs  map[string]bool   // guild channels that are no ticket thread
	ticketMu sync.Mutex        // one ticket thread per user, even for concurrent presses and sends

	filesMu      sync.Mutex
	fileFailures map[string]int // failed downloads per agent file (see maxFileAttempts)

	recentMu sync.Mutex
	recent   map[string]recentRecord // channel id → its user's recently delivered messages (see recent.go)
}

var (
	_ bridge.Adapter          = (*Adapter)(nil)
	_ bridge.AttachmentOpener = (*Adapter)(nil)
	_ bridge.Editor           = (*Adapter)(nil)
	_ bridge.Deleter          = (*Adapter)(nil)
	_ bridge.Typer            = (*Adapter)(nil)
	_ bridge.HealthReporter   = (*Adapter)(nil)
)

// New checks cfg and returns an adapter. It does not contact Discord.
func New(cfg Config, host bridge.Host, logger *zap.Logger) (*Adapter, error) {
	if host == nil {
		return nil, errors.New("discord: no host")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("discord: invalid configuration: %w", err)
	}
	client := cfg.HTTPClient
	if client == nil {
		// Go's default transport keeps two idle connections per host; the outbound workers
		// run more requests than that at once, and each beyond two would open a TLS
		// connection of its own and close it after.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 32
		client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	a := &Adapter{
		rest:         &rest{base: cfg.apiURL, token: string(cfg.Token), client: client, pacer: newPacer()},
		client:       client,
		cdnURL:       cfg.cdnURL,
		intents:      dmIntents,
		support:      cfg.SupportChannelID,
		staffRole:    cfg.StaffRoleID,
		helloTimeout: cfg.HelloTimeout,
		maxUpload:    cfg.MaxUploadSize,
		maxDownload:  cfg.MaxDownloadSize,
		minAge:       cfg.minAccountAge,
		fileTimeout:  defaultFileTimeout,
		now:          time.Now,
		fileFailures: map[string]int{},
		log:          logger,
		backoff:      retry.Backoff{Base: time.Second, Max: 2 * time.Minute, Jitter: 0.5},
		wait:         retry.Sleep,
		invalidWait:  func() time.Duration { return time.Second + rand.N(4*time.Second) },
		health:       errors.New("discord gateway: not connected yet"),
		host:         host,
		owners:       map[string]string{},
		notOurs:      map[string]bool{},
	}
	if a.support != "" {
		a.intents = supportIntents
	}
	if a.helloTimeout <= 0 {
		a.helloTimeout = 15 * time.Second
	}
	if a.maxUpload <= 0 {
		a.maxUpload = 10 << 20
	}
	if a.maxDownload <= 0 {
		a.maxDownload = DefaultMaxDownload
	}
	return a, nil
}

// Platform returns Platform.
func (a *Adapter) Platform() bridge.Platform { return Platform }

// Intents returns the gateway intents the adapter asks for: Direct Messages and their typing
// in DM mode (no privileged intent); in support-channel mode also Guilds, Guild Messages, their
// typing and the privileged Message Content.
func (a *Adapter) Intents() int { return a.intents }

// Health implements bridge.HealthReporter: nil while a gateway session is READY or RESUMED.
func (a *Adapter) Health() error {
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	return a.health
}

func (a *Adapter) setHealth(err error) {
	a.healthMu.Lock()
	a.health = err
	observe := a.observeHealth
	a.healthMu.Unlock()
	if observe != nil {
		observe(err)
	}
}

// Run connects to the gateway and hands every user message, edit, delete, typing and button
// press to in, one event at a time in Discord's order, until ctx is cancelled. It returns nil
// then, or an error when Discord refuses the bot for good (bad token, intents not allowed). It
// returns only after its goroutines have stopped.
func (a *Adapter) Run(ctx context.Context) error {
	in := a.host
	events := make(chan event, eventBuffer)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.runGateway(gctx, events) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case ev := <-events:
				a.handle(gctx, in, ev)
			}
		}
	})
	return g.Wait()
}

// handle processes one dispatch. Failures to store are retried here, holding up later events,
// because the order of a chat's messages matters more than their latency.
func (a *Adapter) handle(ctx context.Context, in bridge.Host, ev event) {
	switch ev.Type {
	case "READY", "RESUMED":
		if ev.Type == "READY" && a.support != "" {
			a.ensurePanel(ctx, in)
		}
		a.catchUp(ctx, in)
	case "MESSAGE_CREATE":
		var m discordgo.Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			a.log.Warn("undecodable discord message", zap.Error(err))
			return
		}
		a.onMessage(ctx, in, &m, m.GuildID)
	case "MESSAGE_UPDATE":
		var m discordgo.Message
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			a.log.Warn("undecodable discord message update", zap.Error(err))
			return
		}
		a.onEdit(ctx, in, &m)
	case "MESSAGE_DELETE":
		var d struct {
			ID        string `json:"id"`
			ChannelID string `json:"channel_id"`
			GuildID   string `json:"guild_id"`
		}
		if json.Unmarshal(ev.Data, &d) != nil {
			return
		}
		a.onDelete(ctx, in, d.ChannelID, d.GuildID, d.ID)
	case "TYPING_START":
		var t struct {
			ChannelID string `json:"channel_id"`
			GuildID   string `json:"guild_id"`
			UserID    string `json:"user_id"`
		}
		if json.Unmarshal(ev.Data, &t) != nil {
			return
		}
		a.onTyping(ctx, in, t.ChannelID, t.GuildID, t.UserID)
	case "INTERACTION_CREATE":
		var i discordgo.Interaction
		if err := json.Unmarshal(ev.Data, &i); err != nil {
			a.log.Warn("undecodable discord interaction", zap.Error(err))
			return
		}
		a.onInteraction(ctx, in, &i)
	case "THREAD_DELETE":
		var c struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(ev.Data, &c) == nil {
			a.chatsMu.Lock()
			delete(a.owners, c.ID)
			a.chatsMu.Unlock()
		}
	}
}

func (a *Adapter) isBot(u *discordgo.User) bool {
	if u == nil || u.Bot || u.System {
		return true
	}
	id := a.botID.Load()
	return id != nil && *id == u.ID
}

// chatOwner says which user a channel's conversation belongs to: the DM user, or the user whose
// ticket thread it is. ok is false for channels the bridge does not serve. A DM channel seen for
// the first time is recorded with authorID as its owner.
func (a *Adapter) chatOwner(ctx context.Context, in bridge.Host, channelID, guildID, authorID string) (owner string, ok bool) {
	a.chatsMu.Lock()
	owner, ok = a.owners[channelID]
	notOurs := a.notOurs[channelID]
	a.chatsMu.Unlock()
	if ok {
		return owner, true
	}
	if notOurs && guildID != "" {
		return "", false
	}
	stored, err := in.Cursor(ctx, cursorOwner+channelID)
	pos := bridge.ParsePosition(stored)
	if err != nil {
		a.log.Warn("cannot read the owner of a discord channel", zap.String("channel_id", channelID), zap.Error(err))
		return "", false
	}
	switch {
	case pos > 0:
		owner = strconv.FormatInt(pos, 10)
	case guildID == "" && isSnowflake(authorID):
		owner = authorID
		if !a.deliver(ctx, in, bridge.IntCursor(cursorOwner+channelID, snowflake(owner))) {
			return "", false
		}
	default:
		if guildID != "" {
			a.chatsMu.Lock()
			a.notOurs[channelID] = true
			a.chatsMu.Unlock()
		}
		return "", false
	}
	a.setOwner(channelID, owner)
	return owner, true
}

func (a *Adapter) setOwner(channelID, userID string) {
	a.chatsMu.Lock()
	a.owners[channelID] = userID
	delete(a.notOurs, channelID)
	a.chatsMu.Unlock()
}

// deliver stores msgs and moves cur, retrying with backoff until it succeeds or ctx ends; it
// reports whether it succeeded.
func (a *Adapter) deliver(ctx context.Context, in bridge.Host, cur bridge.Cursor, msgs ...bridge.Inbound) bool {
	for attempt := 0; ; attempt++ {
		err := in.Deliver(ctx, cur, msgs...)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		d := a.backoff.Delay(attempt)
		a.log.Warn("cannot store discord messages, retrying", zap.Error(err), zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if a.wait(ctx, d) != nil {
			return false
		}
	}
}

// onMessage bridges a message a user wrote in their DM channel or ticket thread.
func (a *Adapter) onMessage(ctx context.Context, in bridge.Host, m *discordgo.Message, guildID string) {
	if a.isBot(m.Author) || m.WebhookID != "" {
		return
	}
	if guildID == "" && a.tooYoung(m.Author.ID) {
		a.refuseYoung(ctx, in, m.Author.ID, m.ChannelID)
		return
	}
	owner, ok := a.chatOwner(ctx, in, m.ChannelID, guildID, m.Author.ID)
	if !ok || owner != m.Author.ID {
		return
	}
	msg, ok := a.inbound(m, m.ChannelID)
	if !ok {
		return
	}
	if a.deliver(ctx, in, bridge.IntCursor(cursorChannel+m.ChannelID, snowflake(m.ID)), msg) {
		a.rememberDelivered(ctx, in, m.ChannelID, []*discordgo.Message{m})
	}
}

// onEdit tells the agent that the user edited a message. Updates without an edit timestamp
// (link previews unfurling) are not edits.
func (a *Adapter) onEdit(ctx context.Context, in bridge.Host, m *discordgo.Message) {
	if m.EditedTimestamp == nil || a.isBot(m.Author) || (m.GuildID == "" && a.tooYoung(m.Author.ID)) {
		return
	}
	owner, ok := a.chatOwner(ctx, in, m.ChannelID, m.GuildID, m.Author.ID)
	if !ok || owner != m.Author.ID {
		return
	}
	msg, ok := a.inbound(m, m.ChannelID)
	if !ok {
		return
	}
	msg.EditOf, msg.MessageID, msg.ReplyTo, msg.ReplyToText = m.ID, editID(m), "", ""
	msg.SentAt = *m.EditedTimestamp
	if a.deliver(ctx, in, bridge.Cursor{}, msg) {
		a.rememberDelivered(ctx, in, m.ChannelID, []*discordgo.Message{m})
	}
}

// onDelete tells the agent that the user deleted a message. Discord does not say who deleted
// it; in a DM only the user can delete their own messages, and in a ticket thread the bridge
// only ever bridged the owner's, so a delete of a message never bridged is dropped by the core.
func (a *Adapter) onDelete(ctx context.Context, in bridge.Host, channelID, guildID, messageID string) {
	owner, ok := a.chatOwner(ctx, in, channelID, guildID, "")
	if !ok || !isSnowflake(messageID) {
		return
	}
	if a.deliver(ctx, in, bridge.Cursor{}, bridge.Inbound{
		User:      bridge.UserRef{Platform: Platform, ID: owner},
		Chat:      bridge.ChatRef{Platform: Platform, ID: channelID},
		MessageID: messageID + ".delete",
		DeletedOf: messageID,
		SentAt:    time.Now(),
	}) {
		a.remember(ctx, in, channelID, func(r recentRecord) { delete(r, messageID) })
	}
}

// onTyping shows the agent that the user is typing.
func (a *Adapter) onTyping(ctx context.Context, in bridge.Host, channelID, guildID, userID string) {
	if id := a.botID.Load(); (id != nil && *id == userID) || (guildID == "" && a.tooYoung(userID)) {
		return
	}
	owner, ok := a.chatOwner(ctx, in, channelID, guildID, userID)
	if !ok || owner != userID {
		return
	}
	in.UserTyping(ctx, bridge.UserRef{Platform: Platform, ID: userID}, bridge.ChatRef{Platform: Platform, ID: channelID})
}

// catchUp reads every known chat over REST after the last message delivered, so messages sent
// while the bridge was down or disconnected reach the agent, in order and before newer ones.
// Chats with recent messages are first re-read up to the cursor for edits and deletes made
// meanwhile (catchUpChanges).
func (a *Adapter) catchUp(ctx context.Context, in bridge.Host) {
	recent := a.recentChats(ctx, in)
	channels := map[string]bool{}
	a.chatsMu.Lock()
	for ch := range a.owners {
		channels[ch] = true
	}
	a.chatsMu.Unlock()
	curs, err := in.Cursors(ctx, cursorChannel)
	if err != nil {
		a.log.Warn("cannot list discord chats to catch up", zap.Error(err))
	}
	for _, c := range curs {
		channels[strings.TrimPrefix(c.Name, cursorChannel)] = true
	}
	total := 0
	for ch := range channels {
		n, err := a.catchUpChannel(ctx, in, ch, recent[ch])
		total += n
		if err != nil && ctx.Err() == nil {
			a.log.Warn("cannot catch up a discord chat", zap.String("channel_id", ch), zap.Error(err))
		}
	}
	a.log.Info("discord catch-up done", zap.Int("chats", len(channels)), zap.Int("messages", total))
}

// catchUpPage is how many messages one REST read returns (Discord's maximum).
const catchUpPage = 100

func (a *Adapter) catchUpChannel(ctx context.Context, in bridge.Host, ch string, changes bool) (int, error) {
	if !isSnowflake(ch) {
		return 0, nil
	}
	name := cursorChannel + ch
	stored, err := in.Cursor(ctx, name)
	after := bridge.ParsePosition(stored)
	if err != nil || after == 0 {
		return 0, err
	}
	owner, ok := a.chatOwner(ctx, in, ch, "", "")
	if !ok {
		return 0, nil
	}
	n := 0
	if changes {
		c, err := a.catchUpChanges(ctx, in, ch, owner, after)
		if err != nil {
			return c, fmt.Errorf("read recent messages for edits and deletes: %w", err)
		}
		n += c
	}
	for {
		var page []*discordgo.Message
		path := fmt.Sprintf("/channels/%s/messages?after=%d&limit=%d", ch, after, catchUpPage)
		if err := a.rest.do(ctx, "GET", path, nil, &page); err != nil {
			return n, err
		}
		if len(page) == 0 {
			return n, nil
		}
		sortMessages(page)
		var (
			msgs      []bridge.Inbound
			delivered []*discordgo.Message
		)
		last := after
		for _, m := range page {
			last = max(last, snowflake(m.ID))
			if a.isBot(m.Author) || m.Author.ID != owner {
				continue
			}
			m.ChannelID = ch
			if msg, ok := a.inbound(m, ch); ok {
				msgs = append(msgs, msg)
				delivered = append(delivered, m)
			}
		}
		if last <= after {
			return n, nil
		}
		if !a.deliver(ctx, in, bridge.IntCursor(name, last), msgs...) {
			return n, ctx.Err()
		}
		a.rememberDelivered(ctx, in, ch, delivered)
		n += len(msgs)
		after = last
		if len(page) < catchUpPage {
			return n, nil
		}
	}
}

func (a *Adapter) invalidSessionWait() time.Duration { return a.invalidWait() }
