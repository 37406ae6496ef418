package bridgetest

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// ErrInjected is the error a Deliver fails with when FailDelivers asked for it.
var ErrInjected = errors.New("bridgetest: injected deliver failure (the database is down)")

// MemHost is an in-memory bridge.Host with the store's semantics, for adapter tests: Deliver
// stores a message once (a replay with the same DedupKey is a no-op) and moves the cursor in the
// same step, never backwards (positions are ordered by bridge.CursorAfter); values are the
// adapter's own; MoveChat and UserTyping are recorded. Tests wait on it with the Wait* methods,
// which block on a change signal rather than a timer, and inject faults with FailDelivers and
// DeliverHook. A zero MemHost is not usable; call NewMemHost. It is safe for concurrent use.
type MemHost struct {
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	cursors map[string]string
	values  map[string]string
	seen    map[string]bool
	msgs    []bridge.Inbound
	moves   []Move
	typing  []Typing
	calls   int            // Deliver calls
	replays int            // messages a successful Deliver carried that were stored before
	times   map[string]int // successful deliveries per DedupKey
	failed  int            // Deliver calls that failed
	failN   int
	hook    func(call int, cur bridge.Cursor, msgs []bridge.Inbound) error
	texts   *texts.Catalogue
	langs   map[bridge.UserRef]string // the language of each user's latest delivered message
}

// Move is a recorded MoveChat.
type Move struct {
	User bridge.UserRef
	Chat bridge.ChatRef
}

// Typing is a recorded UserTyping.
type Typing struct {
	User bridge.UserRef
	Chat bridge.ChatRef
}

var _ bridge.Host = (*MemHost)(nil)

// NewMemHost returns an empty host.
func NewMemHost() *MemHost {
	return &MemHost{changed: make(chan struct{}), cursors: map[string]string{}, values: map[string]string{}, seen: map[string]bool{}, times: map[string]int{},
		texts: texts.Builtin(), langs: map[bridge.UserRef]string{}}
}

func (h *MemHost) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// FailDelivers makes the next n Deliver calls fail with ErrInjected, storing nothing.
func (h *MemHost) FailDelivers(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failN = n
}

// DeliverHook sets a function that runs first in every Deliver (after FailDelivers' failures),
// under the host's lock, with the call number counted from 1 over all calls; an error it returns
// makes that Deliver fail without storing anything. It must not call the host.
func (h *MemHost) DeliverHook(hook func(call int, cur bridge.Cursor, msgs []bridge.Inbound) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hook = hook
}

// Deliver implements bridge.Host.
func (h *MemHost) Deliver(ctx context.Context, cur bridge.Cursor, msgs ...bridge.Inbound) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notifyLocked()
	h.calls++
	if h.failN > 0 {
		h.failN--
		h.failed++
		return ErrInjected
	}
	if h.hook != nil {
		if err := h.hook(h.calls, cur, msgs); err != nil {
			h.failed++
			return err
		}
	}
	for _, m := range msgs {
		if tag, ok := texts.Canonical(m.Language); ok {
			h.langs[m.User] = tag
		}
		h.times[m.DedupKey()]++
		if k := m.DedupKey(); !h.seen[k] {
			h.seen[k] = true
			h.msgs = append(h.msgs, m)
		} else {
			h.replays++
		}
	}
	if cur.Name != "" {
		if old, ok := h.cursors[cur.Name]; !ok || bridge.CursorAfter(cur.Position, old) {
			h.cursors[cur.Name] = cur.Position
		}
	}
	return nil
}

// Cursor implements bridge.Host.
func (h *MemHost) Cursor(ctx context.Context, name string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cursors[name], ctx.Err()
}

// Cursors implements bridge.Host: ordered by name, like the store.
func (h *MemHost) Cursors(ctx context.Context, prefix string) ([]bridge.Cursor, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []bridge.Cursor
	for name, pos := range h.cursors {
		if strings.HasPrefix(name, prefix) {
			out = append(out, bridge.Cursor{Name: name, Position: pos})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, ctx.Err()
}

// SetCursor stores a position as if an earlier run had delivered up to it (it may move the
// cursor backwards, which Deliver never does).
func (h *MemHost) SetCursor(name, pos string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notifyLocked()
	h.cursors[name] = pos
}

// MoveChat implements bridge.Host and records the move.
func (h *MemHost) MoveChat(ctx context.Context, u bridge.UserRef, chat bridge.ChatRef) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notifyLocked()
	h.moves = append(h.moves, Move{User: u, Chat: chat})
	return ctx.Err()
}

// UserTyping implements bridge.Host and records the call.
func (h *MemHost) UserTyping(ctx context.Context, u bridge.UserRef, chat bridge.ChatRef) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notifyLocked()
	h.typing = append(h.typing, Typing{User: u, Chat: chat})
}

// Value implements bridge.Host.
func (h *MemHost) Value(ctx context.Context, key string) (string, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.values[key]
	return v, ok, ctx.Err()
}

// SetValue implements bridge.Host.
func (h *MemHost) SetValue(ctx context.Context, key, value string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notifyLocked()
	h.values[key] = value
	return ctx.Err()
}

// SetValueIfAbsent implements bridge.Host.
func (h *MemHost) SetValueIfAbsent(ctx context.Context, key, value string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notifyLocked()
	if v, ok := h.values[key]; ok {
		return v, ctx.Err()
	}
	h.values[key] = value
	return value, ctx.Err()
}

// DeleteValue implements bridge.Host.
func (h *MemHost) DeleteValue(ctx context.Context, key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.notifyLocked()
	delete(h.values, key)
	return ctx.Err()
}

// Values implements bridge.Host.
func (h *MemHost) Values(ctx context.Context, prefix string) (map[string]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]string{}
	for k, v := range h.values {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out, ctx.Err()
}

// Messages returns the messages stored so far, in the order they were first delivered.
func (h *MemHost) Messages() []bridge.Inbound {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// Delivers returns how many times Deliver was called and how many of those calls failed.
func (h *MemHost) Delivers() (calls, failed int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls, h.failed
}

// Replays returns how many messages successful Delivers carried that were stored already: the
// store makes them no-ops, but an adapter that resumes where it stopped sends none.
func (h *MemHost) Replays() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replays
}

// Deliveries returns how many successful Delivers carried the message with DedupKey key.
func (h *MemHost) Deliveries(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.times[key]
}

// Moves returns the recorded MoveChat calls.
func (h *MemHost) Moves() []Move {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.moves)
}

// Typings returns the recorded UserTyping calls.
func (h *MemHost) Typings() []Typing {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.typing)
}

// Wait blocks until cond holds or ctx ends. cond runs under the host's lock after every change,
// so it sees a consistent state; it must not call the host's methods (use the snapshot it is
// given).
func (h *MemHost) Wait(ctx context.Context, cond func(s Snapshot) bool) error {
	for {
		h.mu.Lock()
		ok := cond(Snapshot{h: h})
		ch := h.changed
		h.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Snapshot is the host's state as a Wait condition sees it, valid only inside the condition.
type Snapshot struct{ h *MemHost }

// Messages are the stored messages (not a copy: do not keep or change it).
func (s Snapshot) Messages() []bridge.Inbound { return s.h.msgs }

// Cursor is the stored position of the named cursor, "" if none.
func (s Snapshot) Cursor(name string) string { return s.h.cursors[name] }

// Delivers are the Deliver calls so far and how many failed.
func (s Snapshot) Delivers() (calls, failed int) { return s.h.calls, s.h.failed }

// Moves are the recorded MoveChat calls (not a copy).
func (s Snapshot) Moves() []Move { return s.h.moves }

// Typings are the recorded UserTyping calls (not a copy).
func (s Snapshot) Typings() []Typing { return s.h.typing }

// Value is the stored value of key.
func (s Snapshot) Value(key string) (string, bool) { v, ok := s.h.values[key]; return v, ok }

// WaitMessages waits until at least n messages are stored and returns them all.
func (h *MemHost) WaitMessages(ctx context.Context, n int) ([]bridge.Inbound, error) {
	var out []bridge.Inbound
	err := h.Wait(ctx, func(s Snapshot) bool {
		out = slices.Clone(s.Messages())
		return len(out) >= n
	})
	return out, err
}

// WaitCursor waits until the named cursor is at pos or after it.
func (h *MemHost) WaitCursor(ctx context.Context, name, pos string) error {
	return h.Wait(ctx, func(s Snapshot) bool {
		c := s.Cursor(name)
		return c == pos || bridge.CursorAfter(c, pos)
	})
}

// WaitDelivers waits until Deliver was called at least n times.
func (h *MemHost) WaitDelivers(ctx context.Context, n int) error {
	return h.Wait(ctx, func(s Snapshot) bool { c, _ := s.Delivers(); return c >= n })
}

// SetTexts makes Texts return c (the built-in catalogue until then).
func (h *MemHost) SetTexts(c *texts.Catalogue) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.texts = c
}

// Texts implements bridge.Host.
func (h *MemHost) Texts() *texts.Catalogue {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.texts
}

// UserLanguage implements bridge.Host: the language of the user's latest delivered message
// that carried one, canonical, as the core remembers it.
func (h *MemHost) UserLanguage(ctx context.Context, u bridge.UserRef) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.langs[u]
}
