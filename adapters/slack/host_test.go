package slack

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// memHost is an in-memory bridge.Host: Deliver deduplicates on the message's dedup key, as
// the queue does, and cursors only move forward.
type memHost struct {
	mu      sync.Mutex
	changed chan struct{}
	cursors map[string]string
	values  map[string]string
	seen    map[string]bool
	msgs    []bridge.Inbound
	fail    int // fail this many Deliver calls
	texts   *texts.Catalogue
}

func newMemHost() *memHost {
	return &memHost{changed: make(chan struct{}), cursors: map[string]string{}, values: map[string]string{}, seen: map[string]bool{},
		texts: texts.Builtin()}
}

func (h *memHost) notify() { close(h.changed); h.changed = make(chan struct{}) }

func (h *memHost) Deliver(ctx context.Context, cur bridge.Cursor, msgs ...bridge.Inbound) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail > 0 {
		h.fail--
		h.notify()
		return errors.New("database is down")
	}
	for _, m := range msgs {
		if !h.seen[m.DedupKey()] {
			h.seen[m.DedupKey()] = true
			h.msgs = append(h.msgs, m)
		}
	}
	if cur.Name != "" && bridge.CursorAfter(cur.Position, h.cursors[cur.Name]) {
		h.cursors[cur.Name] = cur.Position
	}
	h.notify()
	return nil
}

func (h *memHost) Cursor(ctx context.Context, name string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cursors[name], nil
}

func (h *memHost) Cursors(ctx context.Context, prefix string) ([]bridge.Cursor, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []bridge.Cursor
	for k, v := range h.cursors {
		if strings.HasPrefix(k, prefix) {
			out = append(out, bridge.Cursor{Name: k, Position: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (h *memHost) MoveChat(ctx context.Context, u bridge.UserRef, chat bridge.ChatRef) error {
	return nil
}
func (h *memHost) UserTyping(ctx context.Context, u bridge.UserRef, chat bridge.ChatRef) {}

func (h *memHost) Value(ctx context.Context, key string) (string, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.values[key]
	return v, ok, nil
}

func (h *memHost) SetValue(ctx context.Context, key, value string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.values[key] = value
	return nil
}

func (h *memHost) SetValueIfAbsent(ctx context.Context, key, value string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.values[key]; ok {
		return v, nil
	}
	h.values[key] = value
	return value, nil
}

func (h *memHost) DeleteValue(ctx context.Context, key string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.values, key)
	return nil
}

func (h *memHost) Values(ctx context.Context, prefix string) (map[string]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]string{}
	for k, v := range h.values {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out, nil
}

func (h *memHost) messages() []bridge.Inbound {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]bridge.Inbound(nil), h.msgs...)
}

// wait blocks until cond holds (checked after every change) or fails the test after 10 s.
func (h *memHost) wait(t *testing.T, what string, cond func(msgs []bridge.Inbound) bool) []bridge.Inbound {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ch := h.changed
		msgs := append([]bridge.Inbound(nil), h.msgs...)
		h.mu.Unlock()
		if cond(msgs) {
			return msgs
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; have %d messages: %+v", what, len(msgs), msgs)
		}
	}
}

// waitN waits for n messages and returns them.
func (h *memHost) waitN(t *testing.T, n int) []bridge.Inbound {
	t.Helper()
	return h.wait(t, "messages", func(msgs []bridge.Inbound) bool { return len(msgs) >= n })
}

// Texts returns the catalogue: the built-in one unless a test put another in texts first.
func (h *memHost) Texts() *texts.Catalogue { return h.texts }

// UserLanguage returns the language of the user's latest delivered message that had one.
func (h *memHost) UserLanguage(ctx context.Context, u bridge.UserRef) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	lang := ""
	for _, m := range h.msgs {
		if m.User == u && m.Language != "" {
			lang = m.Language
		}
	}
	return lang
}
