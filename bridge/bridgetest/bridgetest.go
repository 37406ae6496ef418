// Package bridgetest provides a fake platform adapter for tests of the core.
package bridgetest

import (
	"context"
	"strconv"
	"sync"

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

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	inbox   bridge.Inbox
	sent    []bridge.Outbound
	parts   []Part
	changes []bridge.Outbound // edits and deletes, in order
	typing  []TypingCall
	nextID  int
}

// Part is one platform message Send created: part Index of OneChat message MessageID.
type Part struct {
	MessageID int64
	Index     int
	ID        string
}

// TypingCall records a Typing call.
type TypingCall struct {
	Chat bridge.ChatRef
	On   bool
}

// NewFakeAdapter returns a fake adapter for the platform.
func NewFakeAdapter(p bridge.Platform) *FakeAdapter {
	return &FakeAdapter{PlatformName: p, changed: make(chan struct{})}
}

// Platform implements bridge.Adapter.
func (f *FakeAdapter) Platform() bridge.Platform { return f.PlatformName }

// Run implements bridge.Adapter: it records the inbox and waits for ctx.
func (f *FakeAdapter) Run(ctx context.Context, in bridge.Inbox) error {
	f.mu.Lock()
	f.inbox = in
	f.notifyLocked()
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	f.inbox = nil
	f.notifyLocked()
	f.mu.Unlock()
	return nil
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
	return ids, nil
}

// Parts returns every platform message Send created so far, in order.
func (f *FakeAdapter) Parts() []Part {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Part(nil), f.parts...)
}

// Edit implements bridge.Editor.
func (f *FakeAdapter) Edit(ctx context.Context, m bridge.Outbound) error { return f.change(m) }

// Delete implements bridge.Deleter.
func (f *FakeAdapter) Delete(ctx context.Context, m bridge.Outbound) error { return f.change(m) }

func (f *FakeAdapter) change(m bridge.Outbound) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, m)
	f.notifyLocked()
	return nil
}

// Typing implements bridge.Typer.
func (f *FakeAdapter) Typing(ctx context.Context, chat bridge.ChatRef, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.typing = append(f.typing, TypingCall{Chat: chat, On: on})
	f.notifyLocked()
	return nil
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

// WaitTyping waits until at least n Typing calls were made and returns them all.
func (f *FakeAdapter) WaitTyping(ctx context.Context, n int) ([]TypingCall, error) {
	var out []TypingCall
	err := f.wait(ctx, func() bool {
		out = append([]TypingCall(nil), f.typing...)
		return len(out) >= n
	})
	return out, err
}

// Inbox returns the inbox the core gave Run, or nil before Run.
func (f *FakeAdapter) Inbox() bridge.Inbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inbox
}

// Receive hands user messages to the core as the platform would, waiting until the core runs
// the adapter.
func (f *FakeAdapter) Receive(ctx context.Context, msgs ...bridge.Inbound) error {
	var in bridge.Inbox
	if err := f.wait(ctx, func() bool { in = f.inbox; return in != nil }); err != nil {
		return err
	}
	return in.Deliver(ctx, bridge.Cursor{}, msgs...)
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
