package bridge

import (
	"bufio"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/texts"
)

// ResultBlocked is a user's message stored but not posted because agents blocked the contact
// (in OneChat, or through Options.Blocklist). Counted in bridge_messages_total.
const ResultBlocked = "blocked"

// blockedReason is the reason a blocked contact's message is stored as failed with.
const blockedReason = "contact blocked"

// blockState is what the core last learnt of whether agents blocked a contact in OneChat.
type blockState struct {
	blocked bool
	at      time.Time
}

// blocks tracks blocked contacts: OneChat's flag (learnt from the contact record and from the
// sender of the contact's own message events) by contact id, and the operator's blocklist by
// identifier.
type blocks struct {
	mu      sync.Mutex
	contact map[int64]blockState

	list atomic.Pointer[map[string]struct{}] // Options.Blocklist and BlocklistFile
}

// setContact records OneChat's flag for a contact.
func (b *blocks) setContact(contactID int64, blocked bool, at time.Time) {
	if contactID == 0 {
		return
	}
	b.mu.Lock()
	if len(b.contact) >= maxBlockStates {
		b.contact = make(map[int64]blockState)
	}
	b.contact[contactID] = blockState{blocked: blocked, at: at}
	b.mu.Unlock()
}

func (b *blocks) contactState(contactID int64) (blockState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s, ok := b.contact[contactID]
	return s, ok
}

// listed reports whether the operator's blocklist names the identifier (e.g. telegram:123).
func (b *blocks) listed(identifier string) bool {
	l := b.list.Load()
	if l == nil {
		return false
	}
	_, ok := (*l)[identifier]
	return ok
}

// ParseBlocklist reads contact identifiers (telegram:123) separated by commas, spaces or
// new lines; # starts a comment that runs to the end of its line.
func ParseBlocklist(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		out = append(out, strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' })...)
	}
	return out
}

// loadBlocklist sets the blocklist from Options.Blocklist and the file's content.
func (c *Core) loadBlocklist(file string) {
	l := map[string]struct{}{}
	for _, id := range c.opts.Blocklist {
		l[strings.TrimSpace(id)] = struct{}{}
	}
	for _, id := range ParseBlocklist(file) {
		l[id] = struct{}{}
	}
	c.blocks.list.Store(&l)
}

// readBlocklistFile reads Options.BlocklistFile; a missing file is an empty list.
func (c *Core) readBlocklistFile() (string, time.Time, error) {
	if c.opts.BlocklistFile == "" {
		return "", time.Time{}, nil
	}
	fi, err := os.Stat(c.opts.BlocklistFile)
	if errors.Is(err, os.ErrNotExist) {
		return "", time.Time{}, nil
	}
	if err != nil {
		return "", time.Time{}, err
	}
	b, err := os.ReadFile(c.opts.BlocklistFile)
	if err != nil {
		return "", time.Time{}, err
	}
	return string(b), fi.ModTime(), nil
}

// blocklistLoop reads BlocklistFile again whenever its content or modification time changes,
// looking every BlocklistReread, so an operator edits it without a restart.
func (c *Core) blocklistLoop(ctx context.Context) error {
	if c.opts.BlocklistFile == "" {
		return nil
	}
	t := time.NewTicker(c.opts.BlocklistReread)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		text, mod, err := c.readBlocklistFile()
		if err != nil {
			c.log.Warn("read BRIDGE_BLOCKLIST_FILE; keeping the list read before", zap.Error(err))
			continue
		}
		if text == c.blocklistText && mod.Equal(c.blocklistMod) {
			continue
		}
		c.blocklistText, c.blocklistMod = text, mod
		c.loadBlocklist(text)
		c.log.Info("blocklist read again", zap.Int("entries", len(*c.blocks.list.Load())))
	}
}

// isBlocked reports whether the user's messages must be stored without being posted: the
// blocklist names them, or agents blocked their OneChat contact. OneChat's flag is known from
// the contact record (read once after a start, and again every BlockRecheck while the contact
// stays blocked, so an unblock takes effect within a minute) and from the sender of the
// contact's own message events, which arrive after each posted message.
func (c *Core) isBlocked(ctx context.Context, cu Customer) (bool, error) {
	if c.blocks.listed(cu.Identifier) {
		return true, nil
	}
	if cu.ContactID == 0 || cu.SourceID == "" || cu.ConversationID == 0 || cu.ConversationStatus == conversationGone {
		// A new contact's flag comes with its creation, a new conversation's with its own.
		return false, nil
	}
	st, known := c.blocks.contactState(cu.ContactID)
	if known && (!st.blocked || time.Since(st.at) < c.opts.BlockRecheck) {
		return st.blocked, nil
	}
	// The contact show route renders no flag; a conversation renders its contact's full record.
	conv, err := c.oc.GetConversation(ctx, cu.SourceID, cu.ConversationID)
	if onechat.IsNotFound(err) {
		return false, nil // the next step recreates what is missing
	}
	if err != nil {
		return false, err
	}
	if conv.Contact == nil {
		return false, nil // a OneChat without blocking
	}
	c.blocks.setContact(cu.ContactID, conv.Contact.Blocked, time.Now())
	if known && st.blocked && !conv.Contact.Blocked {
		c.log.Info("contact unblocked in OneChat; their next messages are posted", zap.Int64("contact_id", cu.ContactID))
	}
	return conv.Contact.Blocked, nil
}

// errContactBlocked says agents blocked the contact in OneChat.
var errContactBlocked = errors.New("contact blocked in OneChat")

// storeBlocked queues the blocked notice (once) and returns the error that stores the message
// as blocked: a failed row with its reason, never posted later, counted as blocked.
func (c *Core) storeBlocked(ctx context.Context, cu Customer) error {
	if err := c.blockedNotice(ctx, cu); err != nil {
		return err
	}
	return &PermanentError{Reason: blockedReason, Blocked: true}
}

// DefaultNotice as Options.BlockedNotice sends the catalogue's text in the user's language.
const DefaultNotice = "default"

// blockedNotice queues Options.BlockedNotice to the user, once: its dedup key names the user,
// so later messages (and replays) queue nothing more while the queue row is retained.
func (c *Core) blockedNotice(ctx context.Context, cu Customer) error {
	if c.opts.BlockedNotice == "" {
		return nil
	}
	text := c.opts.BlockedNotice
	if text == DefaultNotice {
		text = c.texts.Text(c.UserLanguage(ctx, cu.User), texts.Blocked, nil)
	}
	return c.notice(ctx, cu, "blocked-notice:"+cu.User.Identifier(), text)
}

// notice queues a text from the bridge itself to the user's chat, behind agents' messages,
// at most once per dedup key.
func (c *Core) notice(ctx context.Context, cu Customer, dedup, text string) error {
	payload, err := jsonMarshal(Outbound{User: cu.User, Chat: cu.Chat, Text: text})
	if err != nil {
		return err
	}
	n, err := c.enqueues.enqueue(ctx, JobBatch{Jobs: []NewJob{{Direction: Out, Key: cu.Chat.String(), Dedup: dedup, Payload: payload}}})
	if err != nil {
		return err
	}
	if n > 0 {
		c.opts.Metrics.queued(Out, cu.Chat.Platform, n)
	}
	return nil
}

// mayOpenConversation reports whether the user may get another new conversation: fewer than
// NewConversationsPerDay of their conversations were recorded in the last 24 hours. Every
// conversation the bridge opens or adopts for a user is recorded (SetConversation) before a
// message goes into it, so the record is the count: opening one costs no write of its own.
func (c *Core) mayOpenConversation(ctx context.Context, cu Customer) (bool, error) {
	if c.opts.NewConversationsPerDay < 0 {
		return true, nil
	}
	n, err := c.store.ConversationsSince(ctx, cu.ID, time.Now().Add(-24*time.Hour))
	if err != nil {
		return false, err
	}
	return n < c.opts.NewConversationsPerDay, nil
}

// slowDownEvery is the least time between two slow-down notices to one user.
const slowDownEvery = 10 * time.Minute

// ResultHeld is a user's message stored beyond UserMaxPending: held in the queue behind the
// user's backlog. Counted in bridge_messages_total{direction="in"}.
const ResultHeld = "held"

// admitPending counts the messages of each user in msgs that wait beyond UserMaxPending as
// held and tells the user, once per burst, to slow down. The queue holds them: only a user's
// oldest message is ever eligible, so a user's backlog delays that user alone, and the held
// messages are posted in order as it drains. Best effort: the messages are stored already.
func (c *Core) admitPending(ctx context.Context, msgs []Inbound) {
	perUser := map[string]int{}
	var order []Inbound
	for _, m := range msgs {
		k := m.User.Identifier()
		if perUser[k] == 0 {
			order = append(order, m)
		}
		perUser[k]++
	}
	keys, bounds := make([]string, len(order)), make([]int, len(order))
	for i, m := range order {
		keys[i] = m.User.Identifier()
		bounds[i] = c.opts.UserMaxPending + perUser[keys[i]]
	}
	counts, err := c.store.PendingInbound(ctx, keys, bounds)
	if err != nil {
		c.log.Warn("count users' pending messages", zap.Error(err))
		return
	}
	for i, m := range order {
		k, n := keys[i], counts[i]
		if n <= c.opts.UserMaxPending {
			continue
		}
		c.opts.Metrics.held(m.User.Platform, min(perUser[k], n-c.opts.UserMaxPending))
		// A burst is told when it crosses the bound, and a backlog that hovers around the
		// bound is told at most once per slowDownEvery.
		crossed := n-perUser[k] <= c.opts.UserMaxPending
		now := time.Now()
		c.toldMu.Lock()
		last, told := c.told[k]
		tell := crossed && (!told || now.Sub(last) >= slowDownEvery)
		if tell {
			c.told[k] = now
		}
		for u, at := range c.told {
			if now.Sub(at) >= slowDownEvery {
				delete(c.told, u)
			}
		}
		c.toldMu.Unlock()
		if !tell {
			continue
		}
		c.log.Info("user over their pending messages; holding the rest and telling them to slow down",
			zap.String("platform", string(m.User.Platform)), zap.Int("pending", n))
		cu := Customer{User: m.User, Chat: m.Chat}
		text := c.opts.SlowDownNotice
		if text == "" {
			lang := m.Language
			if lang == "" {
				lang = c.UserLanguage(ctx, m.User)
			}
			text = c.texts.Text(lang, texts.SlowDown, nil)
		}
		if err := c.notice(ctx, cu, "slow-down:"+k+":"+strconv.FormatInt(time.Now().UnixNano(), 10), text); err != nil {
			c.log.Warn("queue the slow-down notice", zap.Error(err))
		}
	}
}
