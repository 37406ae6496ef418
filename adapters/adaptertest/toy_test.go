package adaptertest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/adaptertest"
	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
)

// The toy platform: an in-memory "server" and an adapter for it with a knob per property of the
// contract, to show that each check of the suite fails when its property is broken.

const (
	toyPlatform bridge.Platform = "toy"
	toyToken    string          = "toy-SECRET-token-42"
	toyLimit    int             = 100
	toyCursor   string          = "toy.offset"
	toyUser     string          = "u1"
)

// knobs break the toy adapter, one property each.
type knobs struct {
	leakGoroutine   bool // Run leaves a goroutine behind
	errOnCancel     bool // Run returns ctx.Err() when cancelled
	swallowFailed   bool // a failed Deliver drops the update
	ignoreCursor    bool // Run starts from the beginning instead of the stored cursor
	noSplit         bool // a long text goes out as one message
	wrongUnit       bool // the limit is counted in runes, while the platform counts bytes
	ignoreParts     bool // a retry sends every part again
	misclassify429  bool // 429 is a plain error
	blockedAs4xx    bool // a blocked user is Permanent but not Unreachable
	serverPermanent bool // a 5xx is Permanent
	editFirstOnly   bool // Edit changes the first part only
	deleteFirstOnly bool // Delete removes the first part only
	tokenInErrors   bool // network errors carry the URL with the token
	tokenInLogs     bool // Run logs the token
	bufferUploads   bool // Send reads the whole file before sending it
	bufferDownloads bool // OpenAttachment reads the whole file before returning it
}

type toyUpdate struct {
	id   int64
	text string
	file []byte
}

type toyMessage struct {
	id              string
	text            string
	edited, deleted bool
	fileSize        int64
}

// toyServer is the toy platform's fake.
type toyServer struct {
	mu      sync.Mutex
	changed chan struct{}
	updates []toyUpdate
	msgs    []*toyMessage
	nextID  int
	fault   *adaptertest.Fault
}

func newToyServer() *toyServer { return &toyServer{changed: make(chan struct{})} }

func (s *toyServer) notifyLocked() { close(s.changed); s.changed = make(chan struct{}) }

// poll returns the updates after offset, waiting for one.
func (s *toyServer) poll(ctx context.Context, offset int64) ([]toyUpdate, error) {
	for {
		s.mu.Lock()
		var out []toyUpdate
		for _, u := range s.updates {
			if u.id > offset {
				out = append(out, u)
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

type toyError struct {
	status     int
	retryAfter time.Duration
}

func (e *toyError) Error() string { return "toy: status " + strconv.Itoa(e.status) }

var errToyNetwork = errors.New("toy: connection reset")

// create stores a bot message, or fails with the injected fault.
func (s *toyServer) create(text string, file io.Reader) (string, error) {
	s.mu.Lock()
	f := s.fault
	s.fault = nil
	s.mu.Unlock()
	if f != nil {
		switch f.Kind {
		case adaptertest.RateLimit:
			return "", &toyError{429, f.RetryAfter}
		case adaptertest.Unreachable:
			return "", &toyError{403, 0}
		case adaptertest.ClientError:
			return "", &toyError{400, 0}
		case adaptertest.ServerError:
			return "", &toyError{502, 0}
		default:
			return "", errToyNetwork
		}
	}
	var size int64
	if file != nil {
		n, err := io.Copy(io.Discard, file)
		if err != nil {
			return "", err
		}
		size = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	m := &toyMessage{id: strconv.Itoa(s.nextID), text: text, fileSize: size}
	s.msgs = append(s.msgs, m)
	s.notifyLocked()
	return m.id, nil
}

func (s *toyServer) find(id string) *toyMessage {
	for _, m := range s.msgs {
		if m.id == id {
			return m
		}
	}
	return nil
}

// toyAdapter is the adapter, broken as its knobs say.
type toyAdapter struct {
	k    knobs
	srv  *toyServer
	host bridge.Host
	log  *zap.Logger
	leak chan struct{}
}

func (a *toyAdapter) Platform() bridge.Platform { return toyPlatform }

func (a *toyAdapter) Run(ctx context.Context) error {
	if a.k.leakGoroutine {
		go func() { <-a.leak }()
	}
	if a.k.tokenInLogs {
		a.log.Info("toy adapter running", zap.String("url", "https://toy.example/bot"+toyToken))
	}
	var offset int64
	if !a.k.ignoreCursor {
		pos, err := a.host.Cursor(ctx, toyCursor)
		if err != nil {
			return err
		}
		offset = bridge.ParsePosition(pos)
	}
	for {
		ups, err := a.srv.poll(ctx, offset)
		if err != nil {
			if a.k.errOnCancel {
				return err
			}
			return nil
		}
		var msgs []bridge.Inbound
		for _, u := range ups {
			m := bridge.Inbound{User: bridge.UserRef{Platform: toyPlatform, ID: toyUser}, Chat: bridge.ChatRef{Platform: toyPlatform, ID: toyUser},
				MessageID: strconv.FormatInt(u.id, 10), Text: u.text, SentAt: time.Unix(1_700_000_000, 0)}
			if u.file != nil {
				m.Attachments = []bridge.Attachment{{Kind: bridge.KindFile, Name: u.text, Size: int64(len(u.file)), Ref: m.MessageID}}
				m.Text = ""
			}
			msgs = append(msgs, m)
		}
		last := ups[len(ups)-1].id
		if err := a.host.Deliver(ctx, bridge.IntCursor(toyCursor, last), msgs...); err != nil {
			a.log.Warn("deliver failed", zap.Error(err))
			if !a.k.swallowFailed {
				continue
			}
		}
		offset = last
	}
}

func (a *toyAdapter) classify(err error) error {
	var te *toyError
	if !errors.As(err, &te) {
		if a.k.tokenInErrors {
			return fmt.Errorf("post https://toy.example/bot%s/send: %w", toyToken, err)
		}
		return err
	}
	switch {
	case te.status == 429 && !a.k.misclassify429:
		return bridge.RateLimited(te.retryAfter, err)
	case te.status == 403 && !a.k.blockedAs4xx:
		return bridge.Unreachable("user blocked the bot", err)
	case te.status >= 400 && te.status < 500, a.k.serverPermanent && te.status >= 500:
		return bridge.Permanent("refused", err)
	}
	return err
}

func (a *toyAdapter) split(text string) []string {
	switch {
	case a.k.noSplit:
		return []string{text}
	case a.k.wrongUnit:
		return textsplit.Split(text, toyLimit, textsplit.Runes)
	}
	return textsplit.Split(text, toyLimit, textsplit.Bytes)
}

func (a *toyAdapter) Send(ctx context.Context, m bridge.Outbound) ([]string, error) {
	parts := a.split(m.Text)
	var ids []string
	for i, p := range parts {
		if i < len(m.Parts) && !a.k.ignoreParts {
			continue
		}
		var file io.Reader
		if i == 0 && len(m.Attachments) > 0 {
			rc, err := m.Attachments[0].Open(ctx)
			if err != nil {
				return ids, err
			}
			defer rc.Close()
			file = rc
			if a.k.bufferUploads {
				data, err := io.ReadAll(rc)
				if err != nil {
					return ids, err
				}
				file = bytes.NewReader(data)
			}
		}
		id, err := a.srv.create(p, file)
		if err != nil {
			return ids, a.classify(err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (a *toyAdapter) Edit(ctx context.Context, m bridge.Outbound) error {
	parts := a.split(m.Text)
	a.srv.mu.Lock()
	defer a.srv.mu.Unlock()
	for i, id := range m.Parts {
		if i > 0 && a.k.editFirstOnly {
			break
		}
		if msg := a.srv.find(id); msg != nil && i < len(parts) {
			msg.text, msg.edited = parts[i], true
		}
	}
	return nil
}

func (a *toyAdapter) Delete(ctx context.Context, m bridge.Outbound) error {
	a.srv.mu.Lock()
	defer a.srv.mu.Unlock()
	for i, id := range m.Parts {
		if i > 0 && a.k.deleteFirstOnly {
			break
		}
		if msg := a.srv.find(id); msg != nil {
			msg.deleted = true
		}
	}
	return nil
}

func (a *toyAdapter) OpenAttachment(ctx context.Context, att bridge.Attachment) (io.ReadCloser, error) {
	id, _ := strconv.ParseInt(att.Ref, 10, 64)
	a.srv.mu.Lock()
	var data []byte
	for _, u := range a.srv.updates {
		if u.id == id {
			data = u.file
		}
	}
	a.srv.mu.Unlock()
	if data == nil {
		return nil, bridge.Permanent("no such file", nil)
	}
	if a.k.bufferDownloads {
		data = slices.Clone(data)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// toyDriver is the suite's driver over the toy server.
type toyDriver struct {
	k    knobs
	srv  *toyServer
	leak chan struct{}
}

func (d *toyDriver) NewAdapter(t adaptertest.T, host bridge.Host, logger *zap.Logger) bridge.Adapter {
	return &toyAdapter{k: d.k, srv: d.srv, host: host, log: logger, leak: d.leak}
}

// Ready returns at once: the toy server keeps every update until it is polled.
func (d *toyDriver) Ready(t adaptertest.T, a bridge.Adapter) {}

func (d *toyDriver) Target() (bridge.UserRef, bridge.ChatRef) {
	return bridge.UserRef{Platform: toyPlatform, ID: toyUser}, bridge.ChatRef{Platform: toyPlatform, ID: toyUser}
}

func (d *toyDriver) UserWrites(t adaptertest.T, texts ...string) {
	d.srv.mu.Lock()
	defer d.srv.mu.Unlock()
	for _, text := range texts {
		d.srv.updates = append(d.srv.updates, toyUpdate{id: int64(len(d.srv.updates) + 1), text: text})
	}
	d.srv.notifyLocked()
}

func (d *toyDriver) UserSendsFile(t adaptertest.T, name string, data []byte) {
	d.srv.mu.Lock()
	defer d.srv.mu.Unlock()
	d.srv.updates = append(d.srv.updates, toyUpdate{id: int64(len(d.srv.updates) + 1), text: name, file: data})
	d.srv.notifyLocked()
}

func (d *toyDriver) FailNextSend(t adaptertest.T, f adaptertest.Fault) {
	d.srv.mu.Lock()
	defer d.srv.mu.Unlock()
	d.srv.fault = &f
}

func (d *toyDriver) Received(t adaptertest.T, chat bridge.ChatRef) []adaptertest.Message {
	d.srv.mu.Lock()
	defer d.srv.mu.Unlock()
	var out []adaptertest.Message
	for _, m := range d.srv.msgs {
		out = append(out, adaptertest.Message{ID: m.id, Text: m.text, Edited: m.edited, Deleted: m.deleted, FileSize: m.fileSize})
	}
	return out
}

// toy returns the toy platform with the knobs set; leak is closed when the caller is done, to
// end a goroutine leaked on purpose.
func toy(k knobs, leak chan struct{}) adaptertest.Platform {
	return adaptertest.Platform{
		Name:      toyPlatform,
		Token:     toyToken,
		TextLimit: toyLimit,
		Unit:      textsplit.Bytes,
		LargeFile: 32 << 20,
		Start: func(t adaptertest.T) adaptertest.Driver {
			return &toyDriver{k: k, srv: newToyServer(), leak: leak}
		},
	}
}
