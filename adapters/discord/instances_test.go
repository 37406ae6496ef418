package discord_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/onechat/onechat-bridge/adapters/discord"
	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

const (
	instToken   = "MTAy.SECRET-discord-token.two"
	instAlice   = "700000000000000011"
	instSupport = "910000000000000011"
)

// gatewayOnly is the Discord adapter of the instance that holds the gateway in
// TestNonGatewayInstanceAnswersInTheSupportThread: it receives, but every send fails
// transiently, so the reply can only reach Alice through the other instance.
type gatewayOnly struct{ *discord.Adapter }

func (g gatewayOnly) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	return nil, errors.New("this instance does not send in this test")
}

// TestNonGatewayInstanceAnswersInTheSupportThread runs two instances on one database. Only one
// holds the Discord gateway; the other one, which never runs the adapter's Run, delivers the
// agent's reply to a user whose DMs are closed by opening their support thread, and shows
// typing there. Before the adapter seam, Send failed with "the adapter is not running" until
// the gateway's instance happened to claim the message.
func TestNonGatewayInstanceAnswersInTheSupportThread(t *testing.T) {
	srv := discordtest.NewServer(t, instToken)
	srv.AddUser(instAlice, "alice", "Alice A.")
	srv.AddTextChannel(instSupport)
	oc := onechattest.NewServer(t, &onechattest.Options{PingInterval: 50 * time.Millisecond})
	dbURL := pgtest.NewDatabaseURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	type instance struct {
		core    *bridge.Core
		adapter *discord.Adapter
		done    chan error
	}
	start := func(name string, gateway bool) *instance {
		store, err := postgres.Open(ctx, dbURL, zaptest.NewLogger(t).Named(name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(store.Close)
		if err := store.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		in := &instance{done: make(chan error, 1)}
		build := func(h bridge.Host) (bridge.Adapter, error) {
			a, err := discord.New(discord.Config{
				Token: instToken, APIURL: srv.APIURL, CDNURL: srv.CDNURL, HelloTimeout: 2 * time.Second,
				SupportChannelID: instSupport,
			}, h, zaptest.NewLogger(t).Named(name+".discord"))
			if err != nil {
				return nil, err
			}
			in.adapter = a
			if gateway {
				return gatewayOnly{a}, nil
			}
			return a, nil
		}
		in.core, err = bridge.New(bridge.Options{
			Store:      store,
			OneChat:    onechat.NewClient(oc.URL(), oc.InboxIdentifier(), &onechat.Options{HMACToken: oc.HMACToken()}),
			CableURL:   oc.CableURL(),
			Cable:      &onechat.CableOptions{StaleAfter: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
			Adapters:   []bridge.AdapterBuilder{build},
			Logger:     zaptest.NewLogger(t).Named(name),
			MinBackoff: 10 * time.Millisecond,
			MaxBackoff: 50 * time.Millisecond,
			IdlePoll:   100 * time.Millisecond,
			InstanceID: name,
			LeaseTTL:   2 * time.Second,
			LeaseRenew: 200 * time.Millisecond,
			// The gateway's instance fails every send; the reply must not give up meanwhile.
			MaxOutboundAttempts: 1000,
			OneChatRetryAfter:   20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		go func() { in.done <- in.core.Run(runCtx) }()
		t.Cleanup(func() {
			stop()
			if err := <-in.done; err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
		return in
	}
	waitRoles := func(in *instance, what string, ok func(bridge.RolesStatus) bool) {
		t.Helper()
		for !ok(in.core.Roles()) {
			select {
			case <-in.core.RolesChanged():
			case <-ctx.Done():
				t.Fatalf("waiting for %s: roles %+v", what, in.core.Roles())
			}
		}
	}

	a := start("a", true)
	waitRoles(a, "a to run the gateway", func(r bridge.RolesStatus) bool { return len(r.Running) == 1 })
	b := start("b", false)
	waitRoles(b, "b on standby for the gateway", func(r bridge.RolesStatus) bool { return len(r.Standby) == 1 && r.Instances == 2 })

	// Alice writes in her DMs; the conversation starts.
	srv.UserSendsDM(instAlice, "my order is late")
	var conv int64
	if err := oc.Wait(ctx, func() bool {
		c, ok := oc.ContactByIdentifier("discord:" + instAlice)
		if !ok {
			return false
		}
		for _, cv := range oc.Conversations(c.ID) {
			if len(oc.Messages(cv.ID)) > 0 {
				conv = cv.ID
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("Alice's message never reached OneChat")
	}

	// She closes her DMs; the agent answers. Only b can send it, and only by opening her support
	// thread.
	srv.CloseDMs(instAlice)
	oc.AgentReply(conv, "we are looking into it")
	var thread string
	srv.WaitFor(t, "the reply in Alice's support thread", func() bool {
		for _, th := range srv.ThreadsLocked(instSupport) {
			for _, m := range srv.MessagesLocked(th) {
				if m.Content == "we are looking into it" {
					thread = th
					return true
				}
			}
		}
		return false
	})
	if got := a.core.Roles().Running; len(got) != 1 {
		t.Fatalf("a no longer runs the gateway (%v): the test proves nothing", got)
	}

	// Typing: the agent types; whichever instance hears it shows it in the thread now, and b's
	// adapter, whose Run never ran, shows typing by itself. Typing has no catch-up, so the agent
	// types once an instance listens to Alice's contact (the reply may have come through a
	// catch-up before either subscribed: the instances were still sharing out the cable).
	if err := oc.Wait(ctx, func() bool {
		c, ok := oc.ContactByIdentifier("discord:" + instAlice)
		if !ok {
			return false
		}
		for _, ci := range oc.ContactInboxes(c.ID) {
			if oc.Subscribed(ci.PubsubToken) > 0 {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("no instance ever subscribed to Alice's contact")
	}
	oc.AgentTyping(conv, true, false)
	srv.WaitFor(t, "typing in the thread", func() bool { return srv.TypingCountLocked(thread) >= 1 })
	before := srv.TypingCount(thread)
	if err := b.adapter.ShowTyping(ctx, bridge.ChatRef{Platform: discord.Platform, ID: thread}); err != nil {
		t.Fatalf("b's ShowTyping: %v", err)
	}
	if n := srv.TypingCount(thread); n <= before {
		t.Fatalf("b's ShowTyping sent nothing (%d typing requests before, %d after)", before, n)
	}
	for _, m := range srv.Messages(thread) {
		if strings.Contains(m.Content, instToken) {
			t.Fatal("the token reached a message")
		}
	}
}
