package slack

import (
	"bytes"
	"context"
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// TestTicketThreadCloseButtonAndClosingLine: the ticket's acknowledgement carries a Close
// ticket button, whose press by the person is their close (a colleague's is not); a resolve
// posts a closing line with Reopen in the thread, and Reopen's press is a reopen.
func TestTicketThreadCloseButtonAndClosingLine(t *testing.T) {
	r := newRig(t)
	r.a.ticketAck = AckReply
	r.start()
	ctx := context.Background()
	top := r.srv.UserSays(r.support, r.alice, "help", "")
	r.host.waitN(t, 1)
	r.srv.WaitFor(t, "the ticket's reply", func() bool { return len(r.srv.ThreadReplies(r.support, top)) == 1 })
	ack := r.srv.ThreadReplies(r.support, top)[0]
	if !bytes.Contains(ack.Blocks, []byte(ticketActionPrefix+"close")) {
		t.Fatalf("acknowledgement blocks %s, want a Close ticket button", ack.Blocks)
	}
	r.srv.UserPresses(r.bob, r.support, ack.TS, ticketActionPrefix+"close", "close")
	id := r.srv.UserPresses(r.alice, r.support, ack.TS, ticketActionPrefix+"close", "close")
	r.srv.WaitAcked(t, id)
	msgs := r.host.waitN(t, 2)
	if len(msgs) != 2 || msgs[1].Ticket != bridge.TicketClose || msgs[1].User.ID != r.ref(r.alice) || msgs[1].Chat.ID != r.support+":"+top {
		t.Fatalf("delivered %+v, want alice's close of her ticket only", msgs)
	}

	chat := bridge.ChatRef{Platform: Platform, ID: r.support + ":" + top}
	if err := r.a.TicketClosed(ctx, bridge.TicketEvent{Chat: chat, ByUser: true, Notice: bridge.NoticeAuto}); err != nil {
		t.Fatal(err)
	}
	replies := r.srv.ThreadReplies(r.support, top)
	line := replies[len(replies)-1]
	if line.Text != texts.Builtin().Text("en", texts.ThreadClosedChannel, nil) || !bytes.Contains(line.Blocks, []byte(ticketActionPrefix+"reopen")) {
		t.Fatalf("closing line %+v / %s, want the closing line with Reopen", line, line.Blocks)
	}
	r.srv.UserPresses(r.alice, r.support, line.TS, ticketActionPrefix+"reopen", "reopen")
	if got := r.host.waitN(t, 3)[2]; got.Ticket != bridge.TicketReopen {
		t.Fatalf("press = %+v, want a reopen", got)
	}

	// Surveyed by OneChat: the thread still gets its closing line, without a button.
	if err := r.a.TicketClosed(ctx, bridge.TicketEvent{Chat: chat, Surveyed: true, Notice: bridge.NoticeAuto}); err != nil {
		t.Fatal(err)
	}
	replies = r.srv.ThreadReplies(r.support, top)
	if line := replies[len(replies)-1]; line.Text != texts.Builtin().Text("en", texts.ThreadClosedChannel, nil) || bytes.Contains(line.Blocks, []byte(ticketActionPrefix)) {
		t.Fatalf("closing line %+v / %s, want no button", line, line.Blocks)
	}
}

// TestTicketNoticeInSlackDMs: an agent's resolve says nothing in a DM by default; the person's
// own close is answered.
func TestTicketNoticeInSlackDMs(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := context.Background()
	dm := r.srv.DM(r.alice)
	chat := bridge.ChatRef{Platform: Platform, ID: dm}
	if err := r.a.TicketClosed(ctx, bridge.TicketEvent{Chat: chat, Notice: bridge.NoticeAuto}); err != nil {
		t.Fatal(err)
	}
	if n := len(r.srv.Messages(dm)); n != 0 {
		t.Fatalf("%d DM messages after an agent's resolve, want none", n)
	}
	if err := r.a.TicketClosed(ctx, bridge.TicketEvent{Chat: chat, ByUser: true, Notice: bridge.NoticeAuto}); err != nil {
		t.Fatal(err)
	}
	if ms := r.srv.Messages(dm); len(ms) != 1 || ms[0].Text != texts.Builtin().Text("en", texts.TicketClosed, nil) {
		t.Fatalf("DM messages %+v, want the closed notice", ms)
	}
}
