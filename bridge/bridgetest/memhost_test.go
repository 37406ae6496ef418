package bridgetest

import (
	"context"
	"errors"
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
)

func TestMemHostHasTheStoresSemantics(t *testing.T) {
	ctx := context.Background()
	h := NewMemHost()
	msg := func(id string) bridge.Inbound {
		return bridge.Inbound{User: bridge.UserRef{Platform: "x", ID: "1"}, Chat: bridge.ChatRef{Platform: "x", ID: "1"}, MessageID: id, Text: id}
	}
	h.FailDelivers(1)
	if err := h.Deliver(ctx, bridge.Cursor{Name: "c", Position: "1712345678.000200"}, msg("a")); !errors.Is(err, ErrInjected) {
		t.Fatalf("first Deliver: %v, want the injected failure", err)
	}
	if pos, _ := h.Cursor(ctx, "c"); pos != "" || len(h.Messages()) != 0 {
		t.Fatalf("a failed Deliver stored cursor %q and %d messages", pos, len(h.Messages()))
	}
	if err := h.Deliver(ctx, bridge.Cursor{Name: "c", Position: "1712345678.000200"}, msg("a"), msg("b")); err != nil {
		t.Fatal(err)
	}
	// A replay is a no-op, and an older position does not move the cursor back.
	if err := h.Deliver(ctx, bridge.Cursor{Name: "c", Position: "999.1"}, msg("b")); err != nil {
		t.Fatal(err)
	}
	if pos, _ := h.Cursor(ctx, "c"); pos != "1712345678.000200" {
		t.Errorf("cursor %q moved backwards", pos)
	}
	if got := h.Messages(); len(got) != 2 || got[0].Text != "a" || got[1].Text != "b" || h.Replays() != 1 || h.Deliveries(msg("b").DedupKey()) != 2 {
		t.Errorf("messages %+v, replays %d", got, h.Replays())
	}
	if calls, failed := h.Delivers(); calls != 3 || failed != 1 {
		t.Errorf("delivers %d, failed %d", calls, failed)
	}
	if v, _ := h.SetValueIfAbsent(ctx, "k", "first"); v != "first" {
		t.Errorf("SetValueIfAbsent on an empty key = %q", v)
	}
	if v, _ := h.SetValueIfAbsent(ctx, "k", "second"); v != "first" {
		t.Errorf("SetValueIfAbsent on a set key = %q, want the earlier value", v)
	}
	_ = h.SetValue(ctx, "k2", "v2")
	if vals, _ := h.Values(ctx, "k"); len(vals) != 2 {
		t.Errorf("values %v", vals)
	}
	_ = h.DeleteValue(ctx, "k")
	if _, ok, _ := h.Value(ctx, "k"); ok {
		t.Error("a deleted value is still there")
	}
	u, c := bridge.UserRef{Platform: "x", ID: "1"}, bridge.ChatRef{Platform: "x", ID: "t"}
	h.UserTyping(ctx, u, c)
	if err := h.MoveChat(ctx, u, c); err != nil || len(h.Moves()) != 1 || len(h.Typings()) != 1 {
		t.Errorf("moves %v, typing %v, err %v", h.Moves(), h.Typings(), err)
	}
	h.SetCursor("d.2", "5")
	h.SetCursor("d.1", "7")
	if cs, _ := h.Cursors(ctx, "d."); len(cs) != 2 || cs[0].Name != "d.1" || cs[1].Position != "5" {
		t.Errorf("cursors %v, want ordered by name", cs)
	}
}

func TestMemHostWaitWakesOnDeliver(t *testing.T) {
	h := NewMemHost()
	done := make(chan error, 1)
	go func() {
		_, err := h.WaitMessages(context.Background(), 1)
		done <- err
	}()
	m := bridge.Inbound{Chat: bridge.ChatRef{Platform: "x", ID: "1"}, MessageID: "1"}
	if err := h.Deliver(context.Background(), bridge.IntCursor("c", 10), m); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := h.WaitCursor(context.Background(), "c", "9"); err != nil {
		t.Fatal(err)
	}
}
