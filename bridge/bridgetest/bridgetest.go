// Package bridgetest provides a fake platform adapter for tests of the core.
package bridgetest

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
)

// FakeAdapter is an in-memory platform. Tests push user messages with Receive and read what the
// core sent with Sent or WaitSent. SendFunc, when set, decides the outcome of each Send.
type FakeAdapter struct {
	PlatformName bridge.Platform
	// SendFunc, if set, is called for every Send; a nil error records the message as sent.
	SendFunc func(ctx context.Context, m bridge.Outbound) error
	// PartsPerMessage is how many platform messages each Send creates (default 1), as a long
	// text split by a platform's length limit would. A Send with m.Parts set (a retry of one
	// that failed part-way) creates only the parts after those.
	PartsPerMessage int
	// PartFunc, if set, is called before each part is created (part counts from 0 within the
	// message); an error ends the Send there, which returns the ids of the parts before it.
	PartFunc func(ctx context.Context, m bridge.Outbound, part int) error
	// TypingEvery is what TypingRefresh returns (default 1 s).
	TypingEvery time.Duration
	// LeftOutFunc, if set, names what a successful Send left out: its notes come back with
	// the ids as a bridge.PartialError, as a platform that refused one of the files would.
	LeftOutFunc func(m bridge.Outbound) []string
	// UntoldFunc, if set, names files a successful Send left out without a word to the user
	// (bridge.LeftOut): the core then tells the user.
	UntoldFunc func(m bridge.Outbound) []bridge.LeftOutFile
	// ChangeFunc, if set, decides the outcome of each Edit and Delete; an error refuses it.
	ChangeFunc func(ctx context.Context, m bridge.Outbound) error
	// ChatLinkFunc, if set, is the adapter's bridge.ChatLinker; nil means no chat has a link.
	ChatLinkFunc func(u bridge.UserRef, username string, chat bridge.ChatRef) string

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	host    bridge.Host
	running bool
	sent    []bridge.Outbound
	parts   []Part
	changes []bridge.Outbound // edits and deletes, in order
	typing  []TypingCall
	nextID  int
	tickets []TicketCall
}

// Part is one platform message Send created: part Index of OneChat message MessageID.
type Part struct {
	MessageID int64
	Index     int
	ID        string
}

// TypingCall records a ShowTyping call.
type TypingCall struct {
	Chat bridge.ChatRef
}

// NewFakeAdapter returns a fake adapter for the platform.
func NewFakeAdapter(p bridge.Platform) *FakeAdapter {
	return &FakeAdapter{PlatformName: p, changed: make(chan struct{})}
}

// Platform implements bridge.Adapter.
func (f *FakeAdapter) Platform() bridge.Platform { return f.PlatformName }

// Build is the adapter's bridge.AdapterBuilder: it keeps the Host the core gives it.
func (f *FakeAdapter) Build(h bridge.Host) (bridge.Adapter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.host = h
	return f, nil
}

// Host returns the Host the core built the adapter with, nil before.
func (f *FakeAdapter) Host() bridge.Host {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.host
}

// Run implements bridge.Adapter: it marks the adapter running and waits for ctx.
func (f *FakeAdapter) Run(ctx context.Context) error {
	f.mu.Lock()
	f.running = true
	f.notifyLocked()
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.running = false
	f.notifyLocked()
	f.mu.Unlock()
	return nil
}

// Running reports whether the core runs the adapter's Run now.
func (f *FakeAdapter) Running() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running
}

// Send implements bridge.Adapter.
func (f *FakeAdapter) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	if f.SendFunc != nil {
		if err := f.SendFunc(ctx, m); err != nil {
			return nil, err
		}
	}
	var ids []string
	for i := len(m.Parts); i < max(f.PartsPerMessage, 1); i++ {
		if f.PartFunc != nil {
			if err := f.PartFunc(ctx, m, i); err != nil {
				return ids, err
			}
		}
		f.mu.Lock()
		f.nextID++
		id := "sent-" + strconv.Itoa(f.nextID)
		f.parts = append(f.parts, Part{MessageID: m.MessageID, Index: i, ID: id})
		f.notifyLocked()
		f.mu.Unlock()
		ids = append(ids, id)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, m)
	f.notifyLocked()
	var notes []string
	var untold []bridge.LeftOutFile
	if f.LeftOutFunc != nil {
		notes = f.LeftOutFunc(m)
	}
	if f.UntoldFunc != nil {
		untold = f.UntoldFunc(m)
	}
	return ids, bridge.LeftOut(untold, notes...)
}

// ChatLink implements bridge.ChatLinker with ChatLinkFunc.
func (f *FakeAdapter) ChatLink(u bridge.UserRef, username string, chat bridge.ChatRef) string {
	if f.ChatLinkFunc == nil {
		return ""
	}
	return f.ChatLinkFunc(u, username, chat)
}

// Parts returns every platform message Send created so far, in order.
func (f *FakeAdapter) Parts() []Part {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Part(nil), f.parts...)
}

// Edit implements bridge.Editor.
func (f *FakeAdapter) Edit(ctx context.Context, m bridge.Outbound) error { return f.change(ctx, m) }

// Delete implements bridge.Deleter.
func (f *FakeAdapter) Delete(ctx context.Context, m bridge.Outbound) error { return f.change(ctx, m) }

func (f *FakeAdapter) change(ctx context.Context, m bridge.Outbound) error {
	if f.ChangeFunc != nil {
		if err := f.ChangeFunc(ctx, m); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, m)
	f.notifyLocked()
	return nil
}

// ShowTyping implements bridge.Typer.
func (f *FakeAdapter) ShowTyping(ctx context.Context, chat bridge.ChatRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typing = append(f.typing, TypingCall{Chat: chat})
	f.notifyLocked()
	return nil
}

// TypingRefresh implements bridge.Typer.
func (f *FakeAdapter) TypingRefresh() time.Duration {
	if f.TypingEvery > 0 {
		return f.TypingEvery
	}
	return time.Second
}

// WaitChanges waits until at least n edits or deletes were made and returns them all.
func (f *FakeAdapter) WaitChanges(ctx context.Context, n int) ([]bridge.Outbound, error) {
	var out []bridge.Outbound
	err := f.wait(ctx, func() bool {
		out = append([]bridge.Outbound(nil), f.changes...)
		return len(out) >= n
	})
	return out, err
}

// WaitTyping waits until at least n ShowTyping calls were made for chat and returns them.
func (f *FakeAdapter) WaitTyping(ctx context.Context, chat bridge.ChatRef, n int) ([]TypingCall, error) {
	var out []TypingCall
	err := f.wait(ctx, func() bool {
		out = out[:0]
		for _, c := range f.typing {
			if c.Chat == chat {
				out = append(out, c)
			}
		}
		return len(out) >= n
	})
	return out, err
}

// Receive hands user messages to the core as the platform would, waiting until the core runs
// the adapter.
func (f *FakeAdapter) Receive(ctx context.Context, msgs ...bridge.Inbound) error {
	var h bridge.Host
	if err := f.wait(ctx, func() bool { h = f.host; return f.running }); err != nil {
		return err
	}
	return h.Deliver(ctx, bridge.Cursor{}, msgs...)
}

// Sent returns what the core sent so far.
func (f *FakeAdapter) Sent() []bridge.Outbound {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bridge.Outbound(nil), f.sent...)
}

// WaitSent waits until at least n messages were sent and returns them all.
func (f *FakeAdapter) WaitSent(ctx context.Context, n int) ([]bridge.Outbound, error) {
	var out []bridge.Outbound
	err := f.wait(ctx, func() bool {
		if len(f.sent) < n {
			return false
		}
		out = append([]bridge.Outbound(nil), f.sent...)
		return true
	})
	return out, err
}

// wait evaluates cond under the lock after every change until it holds or ctx ends.
func (f *FakeAdapter) wait(ctx context.Context, cond func() bool) error {
	for {
		f.mu.Lock()
		ok := cond()
		ch := f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

func (f *FakeAdapter) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// TicketCall records a TicketClosed (Op bridge.OpClosed) or TicketReopened (bridge.OpReopened)
// call.
type TicketCall struct {
	Op    string
	Event bridge.TicketEvent
	// SentBefore is how many messages Send had delivered when the call was made, so tests
	// can tell what the user saw before the ticket changed.
	SentBefore int
}

// TicketClosed implements bridge.TicketKeeper.
func (f *FakeAdapter) TicketClosed(ctx context.Context, e bridge.TicketEvent) error {
	return f.ticket(bridge.OpClosed, e)
}

// TicketReopened implements bridge.TicketKeeper.
func (f *FakeAdapter) TicketReopened(ctx context.Context, e bridge.TicketEvent) error {
	return f.ticket(bridge.OpReopened, e)
}

func (f *FakeAdapter) ticket(op string, e bridge.TicketEvent) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tickets = append(f.tickets, TicketCall{Op: op, Event: e, SentBefore: len(f.sent)})
	f.notifyLocked()
	return nil
}

// Tickets returns the TicketKeeper calls so far, in order.
func (f *FakeAdapter) Tickets() []TicketCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]TicketCall(nil), f.tickets...)
}

// WaitTickets waits until at least n TicketKeeper calls were made and returns them all.
func (f *FakeAdapter) WaitTickets(ctx context.Context, n int) ([]TicketCall, error) {
	var out []TicketCall
	err := f.wait(ctx, func() bool {
		out = append([]TicketCall(nil), f.tickets...)
		return len(out) >= n
	})
	return out, err
}
