package e2e_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/e2e"
)

// SIGTERM in the middle of traffic: what the user wrote before, during and while the bridge was
// down reaches OneChat once and in order, and agent replies written while it was down reach the
// user after the restart, in the same contact session and conversation.
func TestRestartWithSIGTERMLosesNothing(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	want := seqTexts("msg", 20)
	r.w.TG.SendText(alice, want[0])
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitSubscribed(ctx, contact.ID)
	for _, s := range want[1:10] {
		r.w.TG.SendText(alice, s)
	}
	r.stop() // some of these are in flight or still in Telegram
	for _, s := range want[10:] {
		r.w.TG.SendText(alice, s)
	}
	r.w.OC.AgentReply(conv.ID, "reply while you were away 1")
	r.w.OC.AgentReply(conv.ID, "reply while you were away 2")
	r.start()

	r.waitIncoming(ctx, conv.ID, want...)
	got := r.waitSentTexts(ctx, alice.ID, 2)
	if !slices.Equal(got, []string{"reply while you were away 1", "reply while you were away 2"}) {
		t.Errorf("Telegram chat got %q", got)
	}
	if n := len(r.w.OC.ContactInboxes(contact.ID)); n != 1 {
		t.Errorf("%d contact sessions after the restart, want 1", n)
	}
	if n := len(r.w.OC.Conversations(contact.ID)); n != 1 {
		t.Errorf("%d conversations after the restart, want 1", n)
	}
}

// SIGKILL in the middle of traffic of three users: after a restart every message reached
// OneChat exactly once and in order, and every agent reply reached its user in order, at most
// one of them twice (a send the kill cut off after Telegram took it).
func TestRestartWithSIGKILLLosesNothing(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	users := []int64{5551001, 5551002, 5551003}
	var convs []int64
	for _, id := range users {
		u := user(id)
		r.w.TG.SendText(u, "hello")
		contact, conv := r.conversation(ctx, tgIdentifier(u))
		r.waitSubscribed(ctx, contact.ID)
		convs = append(convs, conv.ID)
	}
	for i := 1; i <= 15; i++ {
		for j, id := range users {
			r.w.TG.SendText(user(id), fmt.Sprintf("in %d", i))
			r.w.OC.AgentReply(convs[j], fmt.Sprintf("out %d", i))
		}
	}
	// Kill once OneChat has part of it: mid-traffic, not before or after.
	if err := r.w.OC.Wait(ctx, func() bool { return len(r.incoming(convs[0])) >= 5 }); err != nil {
		t.Fatal(err)
	}
	r.kill()
	r.start()

	for j, id := range users {
		want := append([]string{"hello"}, seqTexts("in", 15)...)
		r.waitIncoming(ctx, convs[j], want...)
		if _, err := r.w.TG.WaitSentMatch(ctx, id, func(s []e2eSent) bool { return hasAll(sentTexts(s), seqTexts("out", 15)) }); err != nil {
			t.Fatalf("user %d got %q: %v", id, sentTexts(r.w.TG.Sent(id)), err)
		}
		got := sentTexts(r.w.TG.Sent(id))
		if dups := len(got) - 15; dups > 1 {
			t.Errorf("user %d got %d duplicate replies after one SIGKILL: %q", id, dups, got)
		}
		if !inOrder(got, seqTexts("out", 15)) {
			t.Errorf("user %d got replies out of order: %q", id, got)
		}
	}
}

// The cable restarts while an agent reply is on its way (its event delayed, so it is lost with
// the socket) and more replies are written before it is back: all reach the user, in order.
func TestCableRestartDuringAgentReply(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "hi")
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitSubscribed(ctx, contact.ID)

	r.w.OC.DelayEvents(300 * time.Millisecond)
	r.w.OC.AgentReply(conv.ID, "reply 1")
	r.w.OC.RestartCable()
	r.w.OC.AgentReply(conv.ID, "reply 2")
	r.w.OC.DelayEvents(0)
	r.w.OC.DropEvents(1)
	r.w.OC.AgentReply(conv.ID, "reply 3")
	r.w.OC.RestartCable()
	r.w.OC.AgentReply(conv.ID, "reply 4")

	if _, err := r.w.TG.WaitSentMatch(ctx, alice.ID, func(s []e2eSent) bool { return len(s) >= 4 }); err != nil {
		t.Fatalf("Telegram got %q after cable restarts: %v", sentTexts(r.w.TG.Sent(alice.ID)), err)
	}
	got := sentTexts(r.w.TG.Sent(alice.ID))
	if want := seqTexts("reply", 4); !slices.Equal(got, want) {
		t.Errorf("Telegram got %q, want %q", got, want)
	}
	// Another round trip: nothing else was on its way.
	r.w.OC.AgentReply(conv.ID, "reply 5")
	if got := r.waitSentTexts(ctx, alice.ID, 5); !slices.Equal(got, seqTexts("reply", 5)) {
		t.Errorf("Telegram got %q", got)
	}
}

// OneChat answers 503 to everything for a while: /readyz says so, messages wait (counted as
// retried in /metrics) and all arrive in order when OneChat is back.
func TestOneChatDownForAWhile(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "first")
	_, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, "first")

	r.w.OCFaults.SetDown(true)
	want := append([]string{"first"}, seqTexts("while down", 5)...)
	for _, s := range want[1:] {
		r.w.TG.SendText(alice, s)
	}
	var body string
	if !poll(ctx, func() bool {
		var code int
		code, body, _ = r.p.Get(ctx, "/readyz")
		return code == 503 && strings.Contains(body, `"onechat"`)
	}) {
		t.Fatalf("/readyz while OneChat is down: %s", body)
	}
	if !poll(ctx, func() bool {
		m, err := r.p.Scrape(ctx)
		return err == nil && m.Value("bridge_messages_total", "direction", "in", "platform", "telegram", "result", "retried") >= 2
	}) {
		t.Fatal("/metrics never counted the retries while OneChat was down")
	}
	if n := len(r.incoming(conv.ID)); n != 1 {
		t.Fatalf("OneChat got %d messages while down", n)
	}
	r.w.OCFaults.SetDown(false)
	r.waitIncoming(ctx, conv.ID, want...)
	r.waitReady(ctx)
}

// After an agent resolves the conversation, the user's next message opens a new one (the
// default policy), and the agent's answer there reaches the user.
func TestResolveThenNewConversation(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	r.w.TG.SendText(alice, "problem")
	contact, first := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, first.ID, "problem")
	r.waitSubscribed(ctx, contact.ID)
	r.w.OC.AgentReply(first.ID, "fixed")
	r.waitSentTexts(ctx, alice.ID, 1)
	mark := r.logs.Len()
	r.w.OC.Resolve(first.ID)
	// A message the user sends before the bridge hears of the resolve goes to the conversation
	// it knows (and OneChat reopens it), as in OneChat's own widget; this test is about the
	// message after.
	if err := r.logs.WaitFor(ctx, mark, `"msg":"recorded conversation status","conversation_id":`+strconv.FormatInt(first.ID, 10)+`,"status":"resolved"`); err != nil {
		t.Fatalf("the bridge did not record the resolve: %v", err)
	}

	r.w.TG.SendText(alice, "new problem")
	if err := r.w.OC.Wait(ctx, func() bool { return len(r.w.OC.Conversations(contact.ID)) == 2 }); err != nil {
		t.Fatalf("no second conversation after resolve: %d conversations", len(r.w.OC.Conversations(contact.ID)))
	}
	second := r.w.OC.Conversations(contact.ID)[1]
	r.waitIncoming(ctx, second.ID, "new problem")
	if got := contents(r.incoming(first.ID)); !slices.Equal(got, []string{"problem"}) {
		t.Errorf("the resolved conversation got %q", got)
	}
	if c, _ := r.w.OC.Conversation(first.ID); c.Status != "resolved" {
		t.Errorf("the first conversation is %s, want resolved", c.Status)
	}
	r.w.OC.AgentReply(second.ID, "on it")
	if got := r.waitSentTexts(ctx, alice.ID, 2); got[1] != "on it" {
		t.Errorf("Telegram got %q", got)
	}
}

// A user who blocked the bot: the agent's reply fails once (no retry storm), the contact shows
// unreachable in OneChat and in /metrics, and other users' replies keep flowing.
func TestBlockedUser(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	var convs [2]int64
	for i, u := range []int64{alice.ID, bob.ID} {
		r.w.TG.SendText(user(u), "hi")
		c, conv := r.conversation(ctx, tgIdentifier(user(u)))
		r.waitSubscribed(ctx, c.ID)
		convs[i] = conv.ID
	}
	r.w.TG.Block(alice.ID)
	r.w.OC.AgentReply(convs[0], "are you there?")
	r.w.OC.AgentReply(convs[1], "hello bob")
	if got := r.waitSentTexts(ctx, bob.ID, 1); got[0] != "hello bob" {
		t.Errorf("bob got %q", got)
	}
	contact, _ := r.w.OC.ContactByIdentifier(tgIdentifier(alice))
	if err := r.w.OC.Wait(ctx, func() bool {
		c, _ := r.w.OC.ContactByID(contact.ID)
		return c.CustomAttributes["bridge_status"] == "unreachable"
	}); err != nil {
		c, _ := r.w.OC.ContactByID(contact.ID)
		t.Fatalf("the blocked user is not shown unreachable in OneChat: %v", c.CustomAttributes)
	}
	var m e2e.Metrics
	if !poll(ctx, func() bool {
		m, _ = r.p.Scrape(ctx)
		return m.Value("bridge_unreachable_users", "platform", "telegram") == 1
	}) {
		t.Errorf("bridge_unreachable_users{platform=telegram} = %v, want 1", m.Value("bridge_unreachable_users", "platform", "telegram"))
	}
	if v := m.Value("bridge_messages_total", "direction", "out", "platform", "telegram", "result", "failed"); v != 1 {
		t.Errorf("outbound failed = %v, want 1 (the reply to the user who blocked the bot)", v)
	}
	if v := m.Value("bridge_messages_total", "direction", "out", "platform", "telegram", "result", "retried"); v != 0 {
		t.Errorf("outbound retried = %v, want 0: a block is permanent", v)
	}
	if n := len(r.w.TG.Sent(alice.ID)); n != 0 {
		t.Errorf("the blocked chat has %d messages", n)
	}
}

// /livez, /readyz and /metrics as an operator's probes and Prometheus see them from outside.
func TestAdminEndpointsFromOutside(t *testing.T) {
	r := newRig(t)
	r.start()
	ctx := testCtx(t)

	code, body, err := r.p.Get(ctx, "/livez")
	if err != nil || code != 200 {
		t.Errorf("/livez = %d %q %v", code, body, err)
	}
	code, body, _ = r.p.Get(ctx, "/readyz")
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != 200 || ready.Status != "ok" {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	for _, c := range []string{"postgres", "onechat", "cable", "telegram"} {
		if ready.Checks[c] != "ok" {
			t.Errorf("/readyz check %s = %q, want ok (%s)", c, ready.Checks[c], body)
		}
	}

	for _, s := range seqTexts("m", 3) {
		r.w.TG.SendText(alice, s)
	}
	contact, conv := r.conversation(ctx, tgIdentifier(alice))
	r.waitIncoming(ctx, conv.ID, seqTexts("m", 3)...)
	r.waitSubscribed(ctx, contact.ID)
	r.w.OC.AgentReply(conv.ID, "answer")
	r.waitSentTexts(ctx, alice.ID, 1)

	var m e2e.Metrics
	expect := map[string]float64{}
	if !poll(ctx, func() bool {
		m, _ = r.p.Scrape(ctx)
		expect = map[string]float64{
			`in delivered`:  m.Value("bridge_messages_total", "direction", "in", "platform", "telegram", "result", "delivered"),
			`out delivered`: m.Value("bridge_messages_total", "direction", "out", "platform", "telegram", "result", "delivered"),
			`confirmed`:     m.Value("bridge_cable_subscriptions", "state", "confirmed"),
			`cable up`:      m.Value("bridge_cable_connections", "state", "connected"),
			`postgres up`:   m.Value("bridge_postgres_up"),
			`in pending`:    m.Value("bridge_queue_depth", "direction", "in", "state", "pending"),
		}
		return expect["in delivered"] == 3 && expect["out delivered"] == 1 && expect["confirmed"] == 1
	}) {
		t.Errorf("/metrics after 3 messages in and 1 out: %v", expect)
	}
	if expect["cable up"] != 1 || expect["postgres up"] != 1 || expect["in pending"] != 0 {
		t.Errorf("/metrics gauges: %v", expect)
	}
	if _, ok := m.Get("bridge_build_info", "version", "dev"); !ok {
		t.Error("/metrics has no bridge_build_info")
	}
	if m.Value("process_resident_memory_bytes") == 0 || m.Value("go_goroutines") == 0 {
		t.Error("/metrics lacks the process and Go runtime collectors")
	}

	// Postgres connections die (a failover): readiness recovers by itself.
	r.w.PG.Cut()
	r.waitReady(ctx)
	r.w.TG.SendText(alice, "after the database blip")
	r.waitIncoming(ctx, conv.ID, append(seqTexts("m", 3), "after the database blip")...)
}

type e2eSent = telegramSent

func hasAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// inOrder reports whether the first occurrences of want's items in got come in want's order.
func inOrder(got, want []string) bool {
	pos := map[string]int{}
	for i, w := range want {
		pos[w] = i
	}
	last := -1
	seen := map[string]bool{}
	for _, g := range got {
		p, ok := pos[g]
		if !ok || seen[g] {
			continue
		}
		seen[g] = true
		if p < last {
			return false
		}
		last = p
	}
	return true
}
