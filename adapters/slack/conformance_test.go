package slack

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/adaptertest"
	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/adapters/slack/slacktest"
	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
)

// conformanceToken is the bot token of the conformance runs: distinctive, so a leak is found.
const conformanceToken = "xoxb-4242-SECRET-conformance-token"

// TestConformance runs the adapter conformance suite against the fake Slack.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Platform{
		Name:      Platform,
		Token:     conformanceToken,
		TextLimit: maxPartLen,
		Unit:      textsplit.Runes,
		// Below the fake's 64 MiB upload limit.
		LargeFile:     48 << 20,
		RateLimitWait: 3 * time.Second,
		Start:         startConformance,
		// The fake's HTTP server and sockets run until the check's cleanup closes it.
		IgnoreGoroutines: []goleak.Option{
			goleak.IgnoreTopFunction("net/http.(*conn).serve"),
			goleak.IgnoreAnyFunction("github.com/onechat/onechat-bridge/adapters/slack/slacktest.(*Server).dispatch"),
			goleak.IgnoreAnyFunction("github.com/onechat/onechat-bridge/adapters/slack/slacktest.(*Server).pingLoop"),
			goleak.IgnoreAnyFunction("github.com/onechat/onechat-bridge/adapters/slack/slacktest.(*Server).writeLoop"),
			goleak.IgnoreAnyFunction("github.com/onechat/onechat-bridge/adapters/slack/slacktest.(*Server).readLoop"),
			goleak.IgnoreAnyFunction("github.com/onechat/onechat-bridge/adapters/slack/slacktest.(*Server).serveSocket"),
		},
	})
}

// conformanceDriver plays alice, who writes to the app's Messages tab, on a fresh fake.
type conformanceDriver struct {
	srv   *slacktest.Server
	tb    testing.TB
	tr    *adaptertest.FaultyTransport
	alice string
	dm    string
}

func startConformance(t adaptertest.T) adaptertest.Driver {
	tb, ok := t.(testing.TB)
	if !ok {
		t.Fatalf("the slack fake needs a testing.TB")
		return nil
	}
	srv := slacktest.NewServer(tb, slacktest.WithTokens(conformanceToken, "xapp-1-conformance-app-token"))
	srv.DiscardUploads()
	tr := &adaptertest.FaultyTransport{Base: &http.Transport{}}
	t.Cleanup(tr.CloseIdleConnections)
	d := &conformanceDriver{srv: srv, tb: tb, tr: tr}
	d.alice = srv.AddUser(slacktest.User{Name: "alice", RealName: "Alice Smith"})
	d.dm = srv.DM(d.alice)
	return d
}

func (d *conformanceDriver) NewAdapter(t adaptertest.T, host bridge.Host, logger *zap.Logger) bridge.Adapter {
	a, err := New(Config{BotToken: d.srv.BotToken, AppToken: d.srv.AppToken, APIURL: d.srv.APIURL,
		HTTPClient: &http.Client{Transport: d.tr, Timeout: time.Minute}}, host, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	skip := func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	a.wait = skip
	a.pacer = newPacer(time.Millisecond, 1000)
	a.backoff = retry.Backoff{Base: time.Millisecond, Max: 8 * time.Millisecond, Jitter: 0.5}
	return a
}

// Ready waits for the adapter's socket: Slack pushes events only to a connected app (and
// holds them meanwhile). The adapter handles the socket's hello before any event after it.
func (d *conformanceDriver) Ready(t adaptertest.T, a bridge.Adapter) {
	d.srv.WaitConnections(d.tb, 1)
}

func (d *conformanceDriver) Target() (bridge.UserRef, bridge.ChatRef) {
	return bridge.UserRef{Platform: Platform, ID: slacktest.TeamID + ":" + d.alice}, bridge.ChatRef{Platform: Platform, ID: d.dm}
}

func (d *conformanceDriver) UserWrites(t adaptertest.T, texts ...string) {
	for _, text := range texts {
		d.srv.UserSays(d.dm, d.alice, text, "")
	}
}

func (d *conformanceDriver) UserSendsFile(t adaptertest.T, name string, data []byte) {
	d.srv.UserSays(d.dm, d.alice, "", "", slacktest.WithFile(name, "application/octet-stream", data))
}

func (d *conformanceDriver) FailNextSend(t adaptertest.T, f adaptertest.Fault) {
	const post = "chat.postMessage"
	switch f.Kind {
	case adaptertest.RateLimit:
		d.srv.RateLimit(post, f.RetryAfter, 1)
	case adaptertest.Unreachable:
		d.srv.FailWith(post, "channel_not_found", 1)
	case adaptertest.ClientError:
		d.srv.FailWith(post, "invalid_blocks", 1)
	case adaptertest.ServerError:
		d.srv.Inject(post, slacktest.Fault{Status: http.StatusBadGateway, Times: 1})
	case adaptertest.NetworkError:
		d.tr.FailNext(1, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/"+post) })
	}
}

func (d *conformanceDriver) Received(t adaptertest.T, chat bridge.ChatRef) []adaptertest.Message {
	var out []adaptertest.Message
	for _, m := range d.srv.BotPosts() {
		if m.Channel != chat.ID {
			continue
		}
		r := adaptertest.Message{ID: m.TS, Text: m.Text, Edited: m.Edited != nil || m.Updates > 0, Deleted: m.Deleted}
		if len(m.Files) > 0 {
			// Send names a file's message by the file: Slack returns no ts for it.
			r.ID, r.FileName, r.FileSize = "file:"+m.Files[0].ID, m.Files[0].Name, m.Files[0].Size
		}
		out = append(out, r)
	}
	return out
}
