package bridge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
	"github.com/onechat/onechat-bridge/texts"
)

// TestResolveReachesTheTicketKeeperAfterTheLastReply: an agent's last reply and the resolve
// that follows it reach the adapter in that order, once each; a reopen by the agent follows.
func TestResolveReachesTheTicketKeeperAfterTheLastReply(t *testing.T) {
	h := newHarness(t, nil)
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3001, "my printer is on fire")

	// The resolve follows the reply at once: the reply may still be on its way (its event
	// unread, its catch-up running), and the close must still come after it.
	h.oc.AgentReply(conv.ID, "Fixed, closing this now")
	h.oc.Resolve(conv.ID)
	calls, err := h.adapter.WaitTickets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := sentTexts(h.adapter.Sent()); calls[0].SentBefore != 1 || fmt.Sprint(got) != "[Fixed, closing this now]" {
		t.Errorf("%d sent before the close (%q), want the agent's last reply", calls[0].SentBefore, got)
	}
	c := calls[0]
	if c.Op != bridge.OpClosed || c.Event.ConversationID != conv.ID || c.Event.ByUser || c.Event.Surveyed ||
		c.Event.Chat.ID != "3001" || c.Event.Notice != bridge.NoticeAuto {
		t.Errorf("ticket call = %+v, want closed by the agent, not surveyed, auto notice", c)
	}
	if n := counterValue(t, reg, "bridge_survey_waits_total", "platform", "telegram"); n != 0 {
		t.Errorf("the close waited %v times for a survey an inbox without CSAT never sends", n)
	}
	h.waitStatus(ctx, "3001", "resolved")

	h.oc.Reopen(conv.ID)
	calls, err = h.adapter.WaitTickets(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c := calls[1]; c.Op != bridge.OpReopened || c.Event.ConversationID != conv.ID || c.Event.ByUser {
		t.Errorf("second ticket call = %+v, want reopened by the agent", c)
	}
	// Repeated status events change nothing.
	h.oc.Resolve(conv.ID)
	calls, err = h.adapter.WaitTickets(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 3 || calls[2].Op != bridge.OpClosed {
		t.Errorf("ticket calls = %+v, want closed, reopened, closed", calls)
	}
}

// TestResolveWithCSATIsSurveyed: OneChat answers the resolve with its CSAT survey, so the
// adapter is told not to add a notice of its own, and gets the survey before the close.
func TestResolveWithCSATIsSurveyed(t *testing.T) {
	h := newHarness(t, &onechattest.Options{CSATSurveyEnabled: true})
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3002, "hello")
	h.oc.Resolve(conv.ID)
	calls, err := h.adapter.WaitTickets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !calls[0].Event.Surveyed || calls[0].Event.ShowNotice(true) {
		t.Errorf("ticket call = %+v, want surveyed and no notice", calls[0])
	}
	sent := h.adapter.Sent()
	if calls[0].SentBefore != 1 || sent[0].ContentType != "input_csat" {
		t.Errorf("sent %+v, %d before the close, want the CSAT survey first", sent, calls[0].SentBefore)
	}
}

// TestLateSurveyIsTheOnlyWord: OneChat posts its CSAT survey in a job of its own after the
// resolve, so the close may look before the survey exists. It waits for it (the inbox sends
// surveys and this conversation has none), then the user gets the survey and no notice,
// the survey first; a wait that sees no survey before SurveyWait ends gives the notice.
func TestLateSurveyIsTheOnlyWord(t *testing.T) {
	h := newHarness(t, &onechattest.Options{CSATSurveyEnabled: true})
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	h.opts.ResolvedNotice = bridge.NoticeAlways
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3020, "hello")

	h.oc.HoldSurveys(true)
	h.oc.Resolve(conv.ID)
	waitSurveyWaits(t, reg, 1) // the close looked and found no survey
	h.oc.ReleaseSurveys()
	calls, err := h.adapter.WaitTickets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	sent := h.adapter.Sent()
	if c := calls[0]; c.Op != bridge.OpClosed || !c.Event.Surveyed || c.Event.ShowNotice(true) || c.SentBefore != 1 || sent[0].ContentType != "input_csat" {
		t.Errorf("ticket call %+v after %d sent (%+v), want one close after the survey, without a notice", c, c.SentBefore, sent)
	}

	// A survey that never comes (OneChat's rules held it back) ends the wait after SurveyWait:
	// the notice is the user's word.
	h.stop()
	h.opts.SurveyWait = 300 * time.Millisecond
	h.start()
	_, second, _ := h.begin(ctx, 3021, "another question")
	h.oc.Resolve(second.ID)
	calls, err = h.adapter.WaitTickets(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c := calls[1]; c.Op != bridge.OpClosed || c.Event.Surveyed || !c.Event.ShowNotice(false) {
		t.Errorf("ticket call %+v, want a close with the notice", c)
	}
}

// TestLateSurveyAcrossARestart: the close's wait for the survey is kept in the queue, so an
// instance that starts while it waits (after a restart, or another one sharing the database)
// takes it over; the survey OneChat posted meanwhile comes first and the close follows,
// without a notice.
func TestLateSurveyAcrossARestart(t *testing.T) {
	h := newHarness(t, &onechattest.Options{CSATSurveyEnabled: true})
	reg := prometheus.NewRegistry()
	h.opts.Metrics = bridge.NewMetrics(reg)
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3022, "hello")

	h.oc.HoldSurveys(true)
	h.oc.Resolve(conv.ID)
	waitSurveyWaits(t, reg, 1)
	h.stop()
	h.oc.ReleaseSurveys() // nobody hears its event: the next instance finds it by reading
	h.start()
	calls, err := h.adapter.WaitTickets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	sent := h.adapter.Sent()
	if c := calls[0]; !c.Event.Surveyed || c.SentBefore != 1 || sent[0].ContentType != "input_csat" {
		t.Errorf("ticket call %+v after %d sent (%+v), want the close after the survey", c, c.SentBefore, sent)
	}
}

// waitSurveyWaits waits until bridge_survey_waits_total reaches n.
func waitSurveyWaits(t *testing.T, reg *prometheus.Registry, n float64) {
	t.Helper()
	if !poll(ctxT(t), func() bool {
		return counterValue(t, reg, "bridge_survey_waits_total", "platform", "telegram") >= n
	}) {
		t.Fatalf("the close never waited for the survey %v times", n)
	}
}

// TestUserClosesAndReopensTheirTicket: a close from the user posts a line for the agent and
// resolves the conversation; the adapter hears it was the user. Reopen posts a line, which
// reopens the conversation.
func TestUserClosesAndReopensTheirTicket(t *testing.T) {
	h := newHarness(t, nil)
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3003, "question")

	closeMsg := userMessage(3003, "")
	closeMsg.Ticket = bridge.TicketClose
	if err := h.adapter.Receive(ctx, closeMsg); err != nil {
		t.Fatal(err)
	}
	calls, err := h.adapter.WaitTickets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if c := calls[0]; c.Op != bridge.OpClosed || !c.Event.ByUser || !c.Event.ShowNotice(false) {
		t.Errorf("ticket call = %+v, want closed by the user, with a notice even in a DM", c)
	}
	if cv, _ := h.oc.Conversation(conv.ID); cv.Status != "resolved" {
		t.Errorf("conversation status %s, want resolved", cv.Status)
	}
	h.waitIncoming(ctx, conv.ID, "question", texts.Builtin().Agent(texts.AgentUserClosed, nil))

	// A second close of a closed ticket does nothing.
	again := userMessage(3003, "")
	again.Ticket = bridge.TicketClose
	reopen := userMessage(3003, "")
	reopen.Ticket = bridge.TicketReopen
	if err := h.adapter.Receive(ctx, again, reopen); err != nil {
		t.Fatal(err)
	}
	calls, err = h.adapter.WaitTickets(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if c := calls[1]; c.Op != bridge.OpReopened || !c.Event.ByUser {
		t.Errorf("ticket call = %+v, want reopened by the user", c)
	}
	h.waitIncoming(ctx, conv.ID, "question", texts.Builtin().Agent(texts.AgentUserClosed, nil), texts.Builtin().Agent(texts.AgentUserReopened, nil))
	if cv, _ := h.oc.Conversation(conv.ID); cv.Status != "open" {
		t.Errorf("conversation status %s, want open", cv.Status)
	}
	if n := len(h.oc.Conversations(h.oc.Contacts()[0].ID)); n != 1 {
		t.Errorf("%d conversations, want the same one reopened", n)
	}
}

// TestCSATCommentFollowsTheRating: the user's text after a rating becomes the survey's
// comment, not a message (which would reopen the conversation), and the bridge says thanks.
func TestCSATCommentFollowsTheRating(t *testing.T) {
	h := newHarness(t, &onechattest.Options{CSATSurveyEnabled: true})
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3004, "hello")
	h.oc.Resolve(conv.ID)
	if _, err := h.adapter.WaitTickets(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// The survey and the resolve travel separately (a message event, a status event): wait for
	// the survey itself.
	if _, err := h.adapter.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}
	parts := h.adapter.Parts()
	survey := parts[len(parts)-1]
	rate := userMessage(3004, "")
	rate.Choice = &bridge.Choice{MessageID: survey.ID, Title: "★★★★", Value: "4"}
	comment := userMessage(3004, "quick and friendly")
	if err := h.adapter.Receive(ctx, rate, comment); err != nil {
		t.Fatal(err)
	}
	sent, err := h.adapter.WaitSent(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if m := sent[1]; m.Op != bridge.OpNotice || m.Text != texts.Builtin().Text("en", texts.CSATThanks, nil) {
		t.Errorf("sent %+v, want the thanks notice", m)
	}
	msg, _ := h.oc.Message(survey.MessageID)
	resp, _ := msg.ContentAttributes["submitted_values"].(map[string]any)["csat_survey_response"].(map[string]any)
	if fmt.Sprint(resp["rating"]) != "4" || resp["feedback_message"] != "quick and friendly" {
		t.Errorf("submitted values %v, want rating 4 with the comment", msg.ContentAttributes["submitted_values"])
	}
	if cv, _ := h.oc.Conversation(conv.ID); cv.Status != "resolved" {
		t.Errorf("conversation status %s, want still resolved", cv.Status)
	}
	// The window is used: the next text is an ordinary message again (a new conversation).
	if err := h.adapter.Receive(ctx, userMessage(3004, "one more thing")); err != nil {
		t.Fatal(err)
	}
	_, second := h.waitConversation(ctx, "telegram:3004", 2)
	h.waitIncoming(ctx, second.ID, "one more thing")
}

// TestResolveWaitsForTheReplyAReadMissed: a catch-up read that began before the agent's last
// reply and ends after the resolve was announced must not record the resolve: the close would
// be queued ahead of the reply the read missed. The resolve waits for the next read.
func TestResolveWaitsForTheReplyAReadMissed(t *testing.T) {
	h := newHarness(t, nil)
	var arm atomic.Bool
	held, release := make(chan struct{}), make(chan struct{})
	h.intercept(func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/messages") && arm.CompareAndSwap(true, false)
	}, func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		// OneChat answers now; the answer reaches the bridge only after the test's release.
		rec := httptest.NewRecorder()
		oneChat.ServeHTTP(rec, r)
		close(held)
		<-release
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	})
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3011, "is it fixed?")

	arm.Store(true)
	h.oc.AgentReply(conv.ID, "Looking")
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the reply's catch-up never read the conversation")
	}
	// While that read is on its way back, the agent answers and resolves.
	h.oc.AgentReply(conv.ID, "Fixed now")
	h.oc.Resolve(conv.ID)
	// Events are handled in order: once the typing that follows shows, the resolve was heard.
	h.oc.AgentTyping(conv.ID, true, false)
	if _, err := h.adapter.WaitTyping(ctx, bridge.ChatRef{Platform: bridge.Platform("telegram"), ID: "3011"}, 1); err != nil {
		t.Fatal(err)
	}
	close(release)

	calls, err := h.adapter.WaitTickets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := sentTexts(h.adapter.Sent()); calls[0].Op != bridge.OpClosed || calls[0].SentBefore != 2 || fmt.Sprint(got) != "[Looking Fixed now]" {
		t.Errorf("ticket call %+v after %d sent (%q), want the close after both replies", calls[0], calls[0].SentBefore, got)
	}
}

// TestUserCloseRecordedByAnotherInstance: a user's /close handled by one instance whose
// status change another instance records first (its cable heard the resolve) is still the
// user's: the adapter hears ByUser, so a DM user gets the notice under BRIDGE_RESOLVED_NOTICE
// auto.
func TestUserCloseRecordedByAnotherInstance(t *testing.T) {
	a := newHarness(t, nil)
	resolved, release := make(chan struct{}), make(chan struct{})
	a.interceptPosts("/toggle_status", func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		// Instance a never hears the resolve on its cable: the status change and the update
		// that follow it are lost to it.
		a.oc.DropEvents(2)
		rec := httptest.NewRecorder()
		oneChat.ServeHTTP(rec, r)
		close(resolved)
		<-release // until instance b recorded the resolve
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		return true
	})
	a.start()
	ctx := ctxT(t)
	contact, _, _ := a.begin(ctx, 3012, "question")

	closeMsg := userMessage(3012, "")
	closeMsg.Ticket = bridge.TicketClose
	if err := a.adapter.Receive(ctx, closeMsg); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resolved:
	case <-ctx.Done():
		t.Fatal("the close never reached OneChat")
	}
	// Instance b shares the database and OneChat; its cable (re)confirms the contact's
	// subscription, and its catch-up finds the conversation resolved.
	b := &harness{t: t, store: a.store, oc: a.oc, adapter: bridgetest.NewFakeAdapter(bridge.Platform("telegram")), opts: a.opts}
	b.opts.OneChat = onechat.NewClient(a.oc.URL(), a.oc.InboxIdentifier(), &onechat.Options{HMACToken: a.oc.HMACToken()})
	b.start()
	b.core.CableConfirmed(ctx, a.oc.ContactInboxes(contact.ID)[0].PubsubToken)
	a.waitStatus(ctx, "3012", "resolved")
	close(release)

	var calls []bridgetest.TicketCall
	if !poll(ctx, func() bool {
		calls = append(a.adapter.Tickets(), b.adapter.Tickets()...)
		return len(calls) > 0
	}) {
		t.Fatal("no instance closed the ticket")
	}
	if c := calls[0]; len(calls) != 1 || c.Op != bridge.OpClosed || !c.Event.ByUser || !c.Event.ShowNotice(false) {
		t.Errorf("ticket calls %+v, want one close by the user, with the notice in a DM", calls)
	}
}

// TestUserCloseFollowsTheAgentsLastReply: a user's close comes after every agent message
// written before it, even one whose event the bridge has not read (or never gets).
func TestUserCloseFollowsTheAgentsLastReply(t *testing.T) {
	h := newHarness(t, nil)
	// Until the close reaches OneChat, reads of the conversation do not see the reply yet, as
	// a read that was answered just before it was written: only a read after the close can
	// find it.
	var hidden atomic.Int64
	h.intercept(func(r *http.Request) bool { return hidden.Load() != 0 }, func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		if strings.HasSuffix(r.URL.Path, "/toggle_status") {
			hidden.Store(0)
			return false
		}
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/messages") {
			return false
		}
		rec := httptest.NewRecorder()
		oneChat.ServeHTTP(rec, r)
		var page []map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Errorf("message list: %v", err)
			return false
		}
		page = slices.DeleteFunc(page, func(m map[string]any) bool { return int64(m["id"].(float64)) >= hidden.Load() })
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
		return true
	})
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3013, "question")

	h.oc.DropEvents(1000) // the cable hears nothing from here on
	msgs := h.oc.Messages(conv.ID)
	hidden.Store(msgs[len(msgs)-1].ID + 1) // before the reply exists: no read may see it
	h.oc.AgentReply(conv.ID, "Here is the answer")
	closeMsg := userMessage(3013, "")
	closeMsg.Ticket = bridge.TicketClose
	if err := h.adapter.Receive(ctx, closeMsg); err != nil {
		t.Fatal(err)
	}
	calls, err := h.adapter.WaitTickets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := sentTexts(h.adapter.Sent()); calls[0].Op != bridge.OpClosed || !calls[0].Event.ByUser || calls[0].SentBefore != 1 || fmt.Sprint(got) != "[Here is the answer]" {
		t.Errorf("ticket call %+v after %d sent (%q), want the user's close after the agent's reply", calls[0], calls[0].SentBefore, got)
	}
}

// TestStaleStatusEventDoesNotReopenAUserClose: an event's status can be older than the
// status another writer recorded while the event was on its way. Here the line the user's
// close posts announces "open", the user's job then records the resolve, and only after that
// does the catch-up the "open" caused finish: the ticket must stay closed, not be reopened.
func TestStaleStatusEventDoesNotReopenAUserClose(t *testing.T) {
	h := newHarness(t, nil)
	const (
		idle = iota
		armed
		holding
	)
	var stage atomic.Int32
	read, release := make(chan struct{}), make(chan struct{})
	h.intercept(func(r *http.Request) bool { return stage.Load() != idle }, func(w http.ResponseWriter, r *http.Request, oneChat http.Handler) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, "/toggle_status"):
			// The resolve waits until a catch-up is reading, and its events never arrive.
			<-read
			h.oc.DropEvents(2)
			return false
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/messages") && stage.CompareAndSwap(armed, holding):
			rec := httptest.NewRecorder()
			oneChat.ServeHTTP(rec, r)
			close(read)
			<-release // until the user's close is recorded
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return true
		}
		return false
	})
	h.start()
	ctx := ctxT(t)
	_, conv, _ := h.begin(ctx, 3014, "question")
	h.oc.AgentReply(conv.ID, "answer") // the user's next message makes them wait again: an update
	if _, err := h.adapter.WaitSent(ctx, 1); err != nil {
		t.Fatal(err)
	}

	stage.Store(armed)
	closeMsg := userMessage(3014, "")
	closeMsg.Ticket = bridge.TicketClose
	if err := h.adapter.Receive(ctx, closeMsg); err != nil {
		t.Fatal(err)
	}
	h.waitStatus(ctx, "3014", "resolved")
	close(release)
	// A later reply is queued behind whatever the stale event could still cause.
	h.oc.AgentReply(conv.ID, "one more thing")
	if _, err := h.adapter.WaitSent(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if calls := h.adapter.Tickets(); len(calls) != 1 || calls[0].Op != bridge.OpClosed || !calls[0].Event.ByUser {
		t.Errorf("ticket calls %+v, want only the user's close", calls)
	}
	h.waitStatus(ctx, "3014", "resolved")
}
