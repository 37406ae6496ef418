package telegram

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/adaptertest"
	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/adapters/secret"
	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
)

// TestConformance runs the adapter conformance suite against the fake Bot API.
func TestConformance(t *testing.T) {
	adaptertest.Run(t, adaptertest.Platform{
		Name:      Platform,
		Token:     testToken,
		TextLimit: 4096,
		Unit:      textsplit.UTF16,
		// Below the cloud Bot API's 50 MB upload limit.
		LargeFile:     48 << 20,
		RateLimitWait: 3 * time.Second,
		Start:         startConformance,
	})
}

// conformanceDriver plays alice on a fresh fake Bot API.
type conformanceDriver struct {
	srv *telegramtest.Server
	url string
	tr  *adaptertest.FaultyTransport
}

func startConformance(t adaptertest.T) adaptertest.Driver {
	srv := telegramtest.New(testToken)
	srv.DiscardUploads()
	hs := httptest.NewServer(srv.Handler())
	tr := &adaptertest.FaultyTransport{Base: &http.Transport{}}
	t.Cleanup(func() {
		srv.Close() // first: it ends the long polls hs.Close waits for
		hs.Close()
		tr.CloseIdleConnections()
	})
	d := &conformanceDriver{srv: srv, url: hs.URL, tr: tr}
	// Alice wrote to the bot before the bridge started, so her chat exists; those updates were
	// confirmed long ago.
	srv.SendText(alice, "before the bridge")
	last := srv.PushUpdate("message", privateMessage(900, "also before the bridge"))
	resp, err := http.Get(fmt.Sprintf("%s/bot%s/getUpdates?timeout=0&offset=%d", hs.URL, testToken, last+1))
	if err != nil {
		t.Fatalf("confirming the earlier updates: %v", err)
	}
	_ = resp.Body.Close()
	return d
}

func (d *conformanceDriver) NewAdapter(t adaptertest.T, host bridge.Host, logger *zap.Logger) bridge.Adapter {
	a, err := New(Config{Token: secret.String(testToken), APIURL: d.url, HTTPClient: &http.Client{Transport: d.tr, Timeout: time.Minute}}, host, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	skip := func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	a.wait = skip
	a.pacer.sleep = skip
	a.backoff = retry.Backoff{Base: time.Millisecond, Max: 8 * time.Millisecond, Jitter: 0.5}
	return a
}

// Ready returns at once: the Bot API keeps updates until a getUpdates confirms them.
func (d *conformanceDriver) Ready(t adaptertest.T, a bridge.Adapter) {}

func (d *conformanceDriver) Target() (bridge.UserRef, bridge.ChatRef) {
	id := strconv.FormatInt(alice.ID, 10)
	return bridge.UserRef{Platform: Platform, ID: id}, bridge.ChatRef{Platform: Platform, ID: id}
}

func (d *conformanceDriver) UserWrites(t adaptertest.T, texts ...string) {
	for _, text := range texts {
		d.srv.SendText(alice, text)
	}
}

func (d *conformanceDriver) UserSendsFile(t adaptertest.T, name string, data []byte) {
	d.srv.SendFile(alice, "document", telegramtest.File{Name: name, MIME: "application/octet-stream", Data: data}, "")
}

func (d *conformanceDriver) FailNextSend(t adaptertest.T, f adaptertest.Fault) {
	switch f.Kind {
	case adaptertest.RateLimit:
		d.srv.RateLimit(1, int(f.RetryAfter/time.Second))
	case adaptertest.Unreachable:
		d.srv.FailNext(1, http.StatusForbidden) // "Forbidden: bot was blocked by the user"
	case adaptertest.ClientError:
		d.srv.FailNext(1, http.StatusBadRequest)
	case adaptertest.ServerError:
		d.srv.FailNext(1, http.StatusBadGateway)
	case adaptertest.NetworkError:
		d.tr.FailNext(1, nil)
	}
}

func (d *conformanceDriver) Received(t adaptertest.T, chat bridge.ChatRef) []adaptertest.Message {
	id, _ := strconv.ParseInt(chat.ID, 10, 64)
	var out []adaptertest.Message
	for _, m := range d.srv.Sent(id) {
		r := adaptertest.Message{ID: strconv.Itoa(m.MessageID), Text: m.Text, Edited: m.Edits > 0, Deleted: m.Deleted}
		if m.File != nil {
			r.FileName, r.FileSize = m.File.Name, m.File.Size
		}
		out = append(out, r)
	}
	return out
}
