package discord

import (
	"net/http"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/adaptertest"
	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/adapters/secret"
	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
)

// TestConformance runs the adapter conformance suite against the fake Discord.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Platform{
		Name:          Platform,
		Token:         testToken,
		TextLimit:     maxContentLen,
		Unit:          textsplit.UTF16,
		LargeFile:     64 << 20,
		RateLimitWait: 2500 * time.Millisecond,
		Start:         startConformance,
	})
}

// conformanceDriver plays alice in her DMs on a fresh fake Discord.
type conformanceDriver struct {
	srv    *discordtest.Server
	dm     string
	tr     *adaptertest.FaultyTransport
	health map[*Adapter]chan error // what each adapter reported, for Ready
}

func startConformance(t adaptertest.T) adaptertest.Driver {
	srv := discordtest.New(testToken)
	srv.DiscardUploads()
	srv.AddUser(alice, "alice", "Alice A.")
	tr := &adaptertest.FaultyTransport{Base: &http.Transport{}}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	return &conformanceDriver{srv: srv, dm: srv.DMChannel(alice), tr: tr, health: map[*Adapter]chan error{}}
}

func (d *conformanceDriver) NewAdapter(t adaptertest.T, host bridge.Host, logger *zap.Logger) bridge.Adapter {
	cfg := Config{Token: secret.String(testToken), APIURL: d.srv.APIURL, CDNURL: d.srv.CDNURL, HelloTimeout: 5 * time.Second,
		HTTPClient: &http.Client{Transport: d.tr, Timeout: time.Minute}, MaxUploadSize: 100 << 20}
	a, err := New(cfg, host, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a.backoff = retry.Backoff{Base: time.Millisecond, Max: 10 * time.Millisecond, Jitter: 0.5}
	a.invalidWait = func() time.Duration { return 10 * time.Millisecond }
	useVirtualClock(d.srv, a)
	health := make(chan error, 100)
	a.healthMu.Lock()
	a.observeHealth = func(err error) {
		select {
		case health <- err:
		default:
		}
	}
	a.healthMu.Unlock()
	d.health[a] = health
	return a
}

// Ready waits for the gateway's READY: Discord dispatches a message only to a connected bot.
func (d *conformanceDriver) Ready(t adaptertest.T, a bridge.Adapter) {
	ch := d.health[a.(*Adapter)]
	deadline := time.NewTimer(30 * time.Second) // bounds a hang; not an assertion about speed
	defer deadline.Stop()
	for {
		select {
		case err := <-ch:
			if err == nil {
				return
			}
		case <-deadline.C:
			t.Fatalf("the adapter never connected to the fake gateway")
		}
	}
}

func (d *conformanceDriver) Target() (bridge.UserRef, bridge.ChatRef) {
	return bridge.UserRef{Platform: Platform, ID: alice}, bridge.ChatRef{Platform: Platform, ID: d.dm}
}

func (d *conformanceDriver) UserWrites(t adaptertest.T, texts ...string) {
	for _, text := range texts {
		d.srv.UserSendsDM(alice, text)
	}
}

func (d *conformanceDriver) UserSendsFile(t adaptertest.T, name string, data []byte) {
	d.srv.UserSendsDM(alice, "", discordtest.WithAttachment(name, "application/octet-stream", data))
}

func (d *conformanceDriver) FailNextSend(t adaptertest.T, f adaptertest.Fault) {
	path := "/channels/" + d.dm + "/messages"
	switch f.Kind {
	case adaptertest.RateLimit:
		d.srv.RateLimit("POST", path, f.RetryAfter.Seconds())
	case adaptertest.Unreachable:
		d.srv.Fail("POST", path, http.StatusForbidden, codeCannotSendToUser, "Cannot send messages to this user")
	case adaptertest.ClientError:
		d.srv.Fail("POST", path, http.StatusBadRequest, codeInvalidFormBody, "Invalid Form Body")
	case adaptertest.ServerError:
		d.srv.Fail("POST", path, http.StatusBadGateway, 0, "Bad Gateway")
	case adaptertest.NetworkError:
		d.tr.FailNext(1, func(r *http.Request) bool { return r.Method == "POST" && r.URL.Path == "/api/v10"+path })
	}
}

func (d *conformanceDriver) Received(t adaptertest.T, chat bridge.ChatRef) []adaptertest.Message {
	var out []adaptertest.Message
	for _, m := range d.srv.Messages(chat.ID) {
		if m.AuthorID != d.srv.BotID {
			continue
		}
		r := adaptertest.Message{ID: m.ID, Text: m.Content, Edited: m.Edited != nil}
		if len(m.Attachments) > 0 {
			r.FileName, r.FileSize = m.Attachments[0].Filename, int64(m.Attachments[0].Size)
		}
		out = append(out, r)
	}
	return out
}
