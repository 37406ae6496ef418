package slack

import (
	"context"
	"slices"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/slack/slacktest"
	"github.com/onechat/onechat-bridge/bridge"
)

// A person may answer in a thread of the DM ("Reply in thread" under the bot's message).
// Written while the bridge is away, past Slack's retries, such a reply is not in
// conversations.history: the catch-up reads the DM's threads it knows (a reply delivered
// before) and those whose parent history lists after the DM's cursor.
func TestDMThreadRepliesWhileAwayAreCaughtUp(t *testing.T) {
	r := newRig(t)
	r.start()
	dm := r.srv.DM(r.alice)
	r.srv.UserSays(dm, r.alice, "dm 1", "")
	got := r.host.waitN(t, 1)[0]
	var parents []string
	for _, text := range []string{"which order?", "anything else?"} {
		ids, err := r.a.Send(context.Background(), bridge.Outbound{User: got.User, Chat: got.Chat, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		parents = append(parents, ids[0])
	}
	r.srv.UserSays(dm, r.alice, "live reply in a thread", parents[0])
	r.host.waitN(t, 2)
	r.srv.WaitSettled(t)

	dials := r.srv.Dials()
	release := r.srv.HoldSockets()
	r.srv.DropSockets()
	r.srv.UserSays(dm, r.alice, "away reply in the known thread", parents[0], slacktest.Away())
	r.srv.UserSays(dm, r.alice, "away reply opening a thread", parents[1], slacktest.Away())
	r.srv.UserSays(dm, r.alice, "away reply in the known thread, 2", parents[0], slacktest.Away())
	r.srv.UserSays(dm, r.alice, "dm 2", "", slacktest.Away())
	release()
	r.srv.WaitDials(t, dials+1)

	r.host.waitN(t, 6)
	r.srv.WaitSettled(t)
	var all, known []string
	for _, m := range r.host.messages() {
		if m.Chat.ID != dm {
			t.Errorf("message %q in chat %s, want the DM", m.Text, m.Chat.ID)
		}
		all = append(all, m.Text)
		if m.Text == "live reply in a thread" || m.Text == "away reply in the known thread" || m.Text == "away reply in the known thread, 2" {
			known = append(known, m.Text)
		}
	}
	want := []string{"dm 1", "live reply in a thread", "away reply in the known thread", "away reply opening a thread",
		"away reply in the known thread, 2", "dm 2"}
	slices.Sort(want)
	sorted := slices.Sorted(slices.Values(all))
	if !slices.Equal(sorted, want) {
		t.Errorf("delivered %q, want each of %q once", all, want)
	}
	if !slices.Equal(known, []string{"live reply in a thread", "away reply in the known thread", "away reply in the known thread, 2"}) {
		t.Errorf("the known thread's replies arrived as %q, out of order", known)
	}
}
