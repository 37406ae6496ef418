package adaptertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/bridgetest"
)

// checkDeadline bounds a hung check; it is not an assertion about speed.
const checkDeadline = 2 * time.Minute

// env is one check's world: a fresh fake, a host and a logger the suite reads.
type env struct {
	t      T
	p      Platform
	d      Driver
	host   *bridgetest.MemHost
	logs   *observer.ObservedLogs
	logger *zap.Logger
	ctx    context.Context
	nextID int64
	sender bridge.Adapter // built on first use by adapterForSend
}

func newEnv(t T, p Platform) *env {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	ctx, cancel := context.WithTimeout(context.Background(), checkDeadline)
	e := &env{t: t, p: p, host: bridgetest.NewMemHost(), logs: logs, logger: zap.New(core), ctx: ctx, nextID: 7_000_000}
	t.Cleanup(cancel)
	// Registered before anything the check starts, so it runs after their cleanups.
	t.Cleanup(e.scanLogs)
	e.d = p.Start(t)
	return e
}

// adapter builds a new adapter on the check's host.
func (e *env) adapter() bridge.Adapter {
	e.t.Helper()
	a := e.d.NewAdapter(e.t, e.host, e.logger)
	if a == nil {
		e.t.Fatalf("the driver built no adapter")
	}
	if a.Platform() != e.p.Name {
		e.t.Errorf("Platform() = %q, want %q", a.Platform(), e.p.Name)
	}
	return a
}

// run starts a.Run and returns a function that cancels it and returns what Run returned. The
// check's cleanup stops it too.
func (e *env) run(a bridge.Adapter) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-e.ctx.Done():
				err = errors.New("Run did not return after its context was cancelled")
			}
		})
		return err
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

// start builds an adapter, runs it and waits until it is connected.
func (e *env) start() (bridge.Adapter, func() error) {
	e.t.Helper()
	a := e.adapter()
	stop := e.run(a)
	e.d.Ready(e.t, a)
	return a, stop
}

func (e *env) stopped(stop func() error) {
	e.t.Helper()
	if err := stop(); err != nil {
		e.t.Fatalf("Run after cancel: %v, want nil", err)
	}
}

// waitText waits until a delivered message holds text.
func (e *env) waitText(text string) {
	e.t.Helper()
	err := e.host.Wait(e.ctx, func(s bridgetest.Snapshot) bool {
		return slices.ContainsFunc(s.Messages(), func(m bridge.Inbound) bool { return strings.Contains(m.Text, text) })
	})
	if err != nil {
		e.t.Fatalf("waiting for a delivered message with %q: %v (have %s)", text, err, texts(e.host.Messages()))
	}
}

func texts(msgs []bridge.Inbound) string {
	var out []string
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%q", m.Text))
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// outbound is a new agent message to the target.
func (e *env) outbound(text string) bridge.Outbound {
	u, c := e.d.Target()
	e.nextID++
	return bridge.Outbound{User: u, Chat: c, ConversationID: 1, MessageID: e.nextID, Text: text, ContentType: "text"}
}

func (e *env) received() map[string]Message {
	_, c := e.d.Target()
	out := map[string]Message{}
	for _, m := range e.d.Received(e.t, c) {
		out[m.ID] = m
	}
	return out
}

// leaks reports whether s holds the token.
func (e *env) leaks(s string) bool { return e.p.Token != "" && strings.Contains(s, e.p.Token) }

func (e *env) noTokenIn(what string, err error) {
	e.t.Helper()
	if err != nil && e.leaks(err.Error()) {
		e.t.Errorf("%s: the error holds the token: %v", what, err)
	}
}

func (e *env) scanLogs() {
	for _, entry := range e.logs.All() {
		line := entry.Message
		for k, v := range entry.ContextMap() {
			line += fmt.Sprintf(" %s=%v", k, v)
		}
		if e.leaks(line) {
			e.t.Errorf("a log line holds the token: %s", line)
		}
	}
}

// longText is a text of about 2.5 times the platform's limit whose words all differ and count
// differently in bytes, runes and UTF-16 units, so a limit counted in the wrong unit shows.
func longText(p Platform, word string) string {
	var b strings.Builder
	for i := 0; p.Unit.Len(b.String()) < p.TextLimit*5/2; i++ {
		if i > 0 {
			if i%40 == 0 {
				b.WriteString("\n\n")
			} else {
				b.WriteString(" ")
			}
		}
		fmt.Fprintf(&b, "%s%d", word, i)
		if i%3 == 0 {
			b.WriteString("😀é")
		}
	}
	return b.String()
}

func words(s string) string { return strings.Join(strings.Fields(s), " ") }

func checkRunStopsCleanly(t T, p Platform) {
	e := newEnv(t, p)
	opts := append([]goleak.Option{
		goleak.IgnoreCurrent(),
		// Keep-alive connections of the adapter's HTTP client and the fake's server: they belong
		// to the transport and the server, which outlive Run.
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
	}, p.IgnoreGoroutines...)
	_, stop := e.start()
	e.d.UserWrites(t, "hello from the conformance suite")
	e.waitText("hello from the conformance suite")
	e.stopped(stop)
	if err := goleak.Find(opts...); err != nil {
		t.Errorf("goroutines left behind after Run returned: %v", err)
	}
}

func checkRedeliversFailedDeliver(t T, p Platform) {
	e := newEnv(t, p)
	e.host.FailDelivers(1)
	e.start()
	const first = "first, whose delivery fails"
	e.d.UserWrites(t, first)
	if err := e.host.Wait(e.ctx, func(s bridgetest.Snapshot) bool { _, failed := s.Delivers(); return failed >= 1 }); err != nil {
		t.Fatalf("the adapter did not call Deliver for the user's message: %v", err)
	}
	// A later message shows the adapter moved on; the first must have been delivered by then.
	e.d.UserWrites(t, "second")
	e.waitText("second")
	msgs := e.host.Messages()
	i := slices.IndexFunc(msgs, func(m bridge.Inbound) bool { return m.Text == first })
	j := slices.IndexFunc(msgs, func(m bridge.Inbound) bool { return m.Text == "second" })
	if i < 0 || i > j {
		t.Errorf("after a failed Deliver, the stored messages are %s: the first message was not delivered again before the next", texts(msgs))
	}
}

func checkNoDoubleDeliveryAfterRestart(t T, p Platform) {
	e := newEnv(t, p)
	_, stop := e.start()
	e.d.UserWrites(t, "one")
	e.waitText("one")
	e.stopped(stop)
	before := e.host.Messages()

	e.d.UserWrites(t, "two, while the bridge was away")
	_, stop = e.start()
	e.waitText("two, while the bridge was away")
	e.d.UserWrites(t, "three")
	e.waitText("three")
	e.stopped(stop)

	var got []string
	for _, m := range e.host.Messages() {
		got = append(got, m.Text)
	}
	if len(got) != 3 || got[0] != "one" || got[1] != "two, while the bridge was away" || got[2] != "three" {
		t.Errorf("stored messages %q, want one, two and three in order", got)
	}
	for _, m := range before {
		if n := e.host.Deliveries(m.DedupKey()); n > 1 {
			t.Errorf("%q, delivered before the restart, was delivered %d times: the adapter did not resume from its cursor", m.Text, n)
		}
	}
}

// sendLong sends a long text and checks that it was split at the platform's limit.
func (e *env) sendLong(word string) (bridge.Outbound, []string) {
	e.t.Helper()
	m := e.outbound(longText(e.p, word))
	ids, err := e.adapterForSend().Send(e.ctx, m)
	e.noTokenIn("Send", err)
	if err != nil {
		e.t.Fatalf("Send of a %d-unit text: %v", e.p.Unit.Len(m.Text), err)
	}
	return m, ids
}

// adapterForSend returns the check's adapter for Send, building it on first use; Send works
// without Run.
func (e *env) adapterForSend() bridge.Adapter {
	if e.sender == nil {
		e.sender = e.adapter()
	}
	return e.sender
}

func checkSplitsLongText(t T, p Platform) {
	e := newEnv(t, p)
	m, ids := e.sendLong("split")
	if len(ids) < 3 {
		t.Fatalf("a text of %d %s (limit %d) became %d messages, want at least 3", p.Unit.Len(m.Text), p.Unit, p.TextLimit, len(ids))
	}
	got := e.received()
	var parts []string
	for i, id := range ids {
		r, ok := got[id]
		if !ok {
			t.Errorf("part %d (id %s) is not in the chat", i, id)
			continue
		}
		if n := p.Unit.Len(r.Text); n > p.TextLimit {
			t.Errorf("part %d is %d %s long, over the limit %d", i, n, p.Unit, p.TextLimit)
		}
		parts = append(parts, r.Text)
	}
	if words(strings.Join(parts, " ")) != words(m.Text) {
		t.Errorf("the parts do not hold the text: got %d words, want %d", len(strings.Fields(strings.Join(parts, " "))), len(strings.Fields(m.Text)))
	}
}

func checkRetryWithPartsSendsRest(t T, p Platform) {
	e := newEnv(t, p)
	m, ids := e.sendLong("retry")
	if len(ids) < 2 {
		t.Fatalf("a long text became %d messages", len(ids))
	}
	first := e.received()
	before := len(first)
	// The same text again as another message whose first part an earlier attempt delivered.
	retry := e.outbound(m.Text)
	retry.Parts = ids[:1]
	rest, err := e.adapterForSend().Send(e.ctx, retry)
	e.noTokenIn("Send", err)
	if err != nil {
		t.Fatalf("Send with Parts: %v", err)
	}
	after := e.received()
	if len(rest) != len(ids)-1 || len(after)-before != len(ids)-1 {
		t.Fatalf("a retry carrying 1 of %d parts returned %d ids and created %d messages, want %d", len(ids), len(rest), len(after)-before, len(ids)-1)
	}
	for i, id := range rest {
		if got, want := after[id].Text, first[ids[i+1]].Text; words(got) != words(want) {
			t.Errorf("part %d of the retry is %.60q…, want %.60q…", i+2, got, want)
		}
	}
}

func checkClassifiesErrors(t T, p Platform) {
	e := newEnv(t, p)
	wait := p.RateLimitWait
	if wait <= 0 {
		wait = 3 * time.Second
	}
	for _, kind := range []FaultKind{RateLimit, Unreachable, ClientError, ServerError, NetworkError} {
		e.d.FailNextSend(t, Fault{Kind: kind, RetryAfter: wait})
		m := e.outbound("classified as " + kind.String())
		ids, err := e.adapterForSend().Send(e.ctx, m)
		e.noTokenIn("Send with "+kind.String(), err)
		var rl *bridge.RateLimitedError
		var perm *bridge.PermanentError
		limited, permanent := errors.As(err, &rl), errors.As(err, &perm)
		switch kind {
		case RateLimit:
			if !limited || permanent {
				t.Errorf("%s: Send returned %v, want bridge.RateLimited", kind, err)
			} else if rl.RetryAfter != wait {
				t.Errorf("%s: RetryAfter %s, want the platform's %s", kind, rl.RetryAfter, wait)
			}
		case Unreachable:
			if !permanent || !perm.Unreachable {
				t.Errorf("%s: Send returned %v, want bridge.Unreachable", kind, err)
			}
		case ClientError:
			if !permanent || perm.Unreachable || limited {
				t.Errorf("%s: Send returned %v, want bridge.Permanent (not Unreachable)", kind, err)
			}
		default:
			if permanent || limited {
				t.Errorf("%s: Send returned %v, want an error the queue retries", kind, err)
			}
			if err == nil && len(ids) == 0 {
				t.Errorf("%s: Send returned no error and no message", kind)
			}
		}
	}
	// The faults are spent: the chat works again.
	if _, err := e.adapterForSend().Send(e.ctx, e.outbound("after the faults")); err != nil {
		t.Errorf("Send after the faults: %v", err)
	}
}

func checkEditDeleteEveryPart(t T, p Platform) {
	e := newEnv(t, p)
	a := e.adapterForSend()
	ed, canEdit := a.(bridge.Editor)
	del, canDelete := a.(bridge.Deleter)
	if !canEdit && !canDelete {
		t.Logf("the adapter is neither a bridge.Editor nor a bridge.Deleter")
		return
	}
	m, ids := e.sendLong("edit")
	if canEdit {
		edit := m
		edit.Op, edit.Parts = bridge.OpEdit, ids
		edit.Text = longText(p, "news")
		err := ed.Edit(e.ctx, edit)
		e.noTokenIn("Edit", err)
		if err != nil {
			t.Fatalf("Edit: %v", err)
		}
		got := e.received()
		var parts []string
		for i, id := range ids {
			if r := got[id]; !r.Edited || !strings.Contains(r.Text, "news") {
				t.Errorf("part %d (id %s) was not edited: %.60q…", i, id, r.Text)
			}
			parts = append(parts, got[id].Text)
		}
		if words(strings.Join(parts, " ")) != words(edit.Text) {
			t.Errorf("the edited parts do not hold the new text")
		}
	}
	if canDelete {
		rm := m
		rm.Op, rm.Parts, rm.Text = bridge.OpDelete, ids, ""
		err := del.Delete(e.ctx, rm)
		e.noTokenIn("Delete", err)
		if err != nil {
			t.Fatalf("Delete: %v", err)
		}
		got := e.received()
		for i, id := range ids {
			if r, ok := got[id]; ok && !r.Deleted {
				t.Errorf("part %d (id %s) was not deleted", i, id)
			}
		}
	}
}

func checkTokenNeverLeaks(t T, p Platform) {
	e := newEnv(t, p)
	// A failed Deliver and a message make the adapter log while it runs.
	e.host.FailDelivers(1)
	a, stop := e.start()
	e.d.UserWrites(t, "a message while the token is watched")
	e.waitText("a message while the token is watched")
	wait := p.RateLimitWait
	if wait <= 0 {
		wait = 3 * time.Second
	}
	for _, kind := range []FaultKind{RateLimit, Unreachable, ClientError, ServerError, NetworkError} {
		e.d.FailNextSend(t, Fault{Kind: kind, RetryAfter: wait})
		_, err := a.Send(e.ctx, e.outbound("watched "+kind.String()))
		e.noTokenIn("Send with "+kind.String(), err)
	}
	_, c := e.d.Target()
	bogus := bridge.Outbound{Chat: c, Text: "x", Parts: []string{"1", "not-an-id"}}
	if ed, ok := a.(bridge.Editor); ok {
		e.noTokenIn("Edit", ed.Edit(e.ctx, bogus))
	}
	if del, ok := a.(bridge.Deleter); ok {
		e.noTokenIn("Delete", del.Delete(e.ctx, bogus))
	}
	if op, ok := a.(bridge.AttachmentOpener); ok {
		rc, err := op.OpenAttachment(e.ctx, bridge.Attachment{Kind: bridge.KindFile, Name: "gone.bin", Ref: "no-such-file"})
		if rc != nil {
			_ = rc.Close()
		}
		e.noTokenIn("OpenAttachment", err)
	}
	e.stopped(stop)
	gatherers := prometheus.Gatherers{prometheus.DefaultGatherer}
	if p.Metrics != nil {
		gatherers = append(gatherers, p.Metrics)
	}
	families, err := gatherers.Gather()
	if err != nil {
		t.Errorf("gather metrics: %v", err)
	}
	for _, f := range families {
		if e.leaks(f.String()) {
			t.Errorf("metric %s holds the token", f.GetName())
		}
	}
	e.scanLogs()
}

// liveHeap is the heap in use by live objects.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// genReader produces size bytes of a fixed pattern without holding them. When it hands out
// the last byte it measures the live heap: an adapter that buffers the file holds nearly all of
// it then.
type genReader struct {
	left   int64
	pos    int64
	onLast func()
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), g.left))
	for i := range n {
		p[i] = byte((g.pos + int64(i)) % 251)
	}
	g.pos += int64(n)
	g.left -= int64(n)
	if g.left == 0 && g.onLast != nil {
		g.onLast()
	}
	return n, nil
}

func (g *genReader) Close() error { return nil }

func checkAttachmentsStream(t T, p Platform) {
	e := newEnv(t, p)
	size := p.LargeFile
	if size <= 0 {
		size = 64 << 20
	}
	bound := uint64(size / 4)
	a := e.adapterForSend()
	var mu sync.Mutex
	var base uint64
	var growth []uint64
	open := func(ctx context.Context) (io.ReadCloser, error) {
		return &genReader{left: size, onLast: func() {
			h := liveHeap()
			mu.Lock()
			defer mu.Unlock()
			growth = append(growth, h-min(h, base))
		}}, nil
	}
	m := e.outbound("a large file")
	m.Attachments = []bridge.Attachment{{Kind: bridge.KindFile, Name: "conformance.bin", MIME: "application/octet-stream", Size: size, Ref: "generated", Open: open}}
	base = liveHeap()
	ids, err := a.Send(e.ctx, m)
	e.noTokenIn("Send", err)
	if err != nil {
		t.Fatalf("Send of a %d MiB file: %v", size>>20, err)
	}
	mu.Lock()
	g := slices.Clone(growth)
	mu.Unlock()
	if len(g) == 0 {
		t.Fatalf("Send never read the file to its end")
	}
	for _, d := range g {
		if d >= bound {
			t.Errorf("the live heap grew by %d MiB while the adapter sent a %d MiB file: the file was buffered, not streamed", d>>20, size>>20)
		}
	}
	got := e.received()
	var sent int64
	for _, id := range ids {
		sent = max(sent, got[id].FileSize)
	}
	if sent != size {
		t.Errorf("the fake received a file of %d bytes, want %d", sent, size)
	}

	fs, canSend := e.d.(FileSender)
	op, canOpen := a.(bridge.AttachmentOpener)
	if !canSend || !canOpen {
		t.Logf("inbound files not checked: the driver is a FileSender: %v, the adapter an AttachmentOpener: %v", canSend, canOpen)
		return
	}
	data := make([]byte, 16<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	_, stop := e.start()
	fs.UserSendsFile(t, "inbound.bin", data)
	var att bridge.Attachment
	err = e.host.Wait(e.ctx, func(s bridgetest.Snapshot) bool {
		for _, m := range s.Messages() {
			for _, x := range m.Attachments {
				if x.Name == "inbound.bin" {
					att = x
					return true
				}
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("the user's file was not delivered: %v", err)
	}
	e.stopped(stop)
	base = liveHeap()
	rc, err := op.OpenAttachment(e.ctx, att)
	e.noTokenIn("OpenAttachment", err)
	if err != nil {
		t.Fatalf("OpenAttachment: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	buf := make([]byte, 32<<10)
	var n int64
	var peak uint64
	for {
		k, rerr := rc.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if k > 0 && n == int64(len(data)) {
			if live := liveHeap(); live > base {
				peak = live - base
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			t.Fatalf("reading the user's file: %v", rerr)
		}
	}
	want := sha256.Sum256(data)
	if n != int64(len(data)) || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Errorf("OpenAttachment streamed %d bytes that differ from the %d the user sent", n, len(data))
	}
	if peak >= uint64(len(data)/4) {
		t.Errorf("the live heap grew by %d MiB while a %d MiB file was read: OpenAttachment buffered it", peak>>20, len(data)>>20)
	}
}
