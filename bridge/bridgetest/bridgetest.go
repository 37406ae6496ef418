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

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every change
	inbox   bridge.Inbox
	sent    []bridge.Outbound
	nextID  int
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
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	f.sent = append(f.sent, m)
	f.notifyLocked()
	return []string{"sent-" + strconv.Itoa(f.nextID)}, nil
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
