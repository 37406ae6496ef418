package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/onechat"
	"github.com/onechat/onechat-bridge/texts"
)

// downloadAttempts is how many attempts of an agent message a file OneChat cannot serve for a
// passing reason (5xx, a timeout) may hold it up. The chat's later messages wait behind it, so
// the last of them sends the message with a note in place of the file instead of failing it.
const downloadAttempts = 3

// unsentFileNote is the line the user gets, in their language, in place of an agent file the
// bridge could not fetch: a refused address, a file over ONECHAT_MAX_ATTACHMENT_SIZE, one
// deleted in OneChat.
func (c *Core) unsentFileNote(ctx context.Context, u UserRef, name string) string {
	return c.texts.Text(c.UserLanguage(ctx, u), texts.FileNotSent, texts.Vars{"name": name})
}

// linkLine is how an attachment that is a link (OneChat's fallback, location and embed
// attachments, whose data_url is an address elsewhere) reaches the user: as a line of text,
// never fetched.
func linkLine(a Attachment) string {
	if a.Name == "" || a.Name == a.Ref {
		return "🔗 " + a.Ref
	}
	return "🔗 " + a.Name + ": " + a.Ref
}

// moveLinksToText takes the link attachments out of m and puts them at the end of its text.
// Adapters never see an Attachment of KindLink.
func moveLinksToText(m *Outbound) {
	var files []Attachment
	var lines []string
	for _, a := range m.Attachments {
		if a.Kind == KindLink {
			lines = append(lines, linkLine(a))
			continue
		}
		files = append(files, a)
	}
	if len(lines) > 0 {
		m.Attachments = files
		m.Text = joinNonEmpty("\n\n", m.Text, strings.Join(lines, "\n"))
	}
}

// openOutbound resolves an agent message's files before the message reaches the adapter, so a
// file the bridge cannot or must not fetch never reaches it: it is dropped and a line naming it
// is added to the text ("📎 invoice.pdf could not be sent"). Every adapter then handles it
// alike, without knowing why, and the rest of the message is delivered once, not retried.
// Refusals (an address not allowed, a file over the cap) and deleted files are noted at once; a
// passing failure is retried with the message for downloadAttempts attempts and then noted.
//
// Each file is opened here (the request made, the headers read) and that open stream is what
// the adapter's first Open of it returns; a later Open downloads again. release closes the
// streams the adapter did not take; call it once Send returned. leftOut names the files
// dropped, and why, for agents (see tellLeftOut).
//
// A message that continues one delivered in part (m.Parts) keeps its files as they are, since
// the adapter finds where to continue by counting them: a file failing then fails the attempt.
func (c *Core) openOutbound(ctx context.Context, m *Outbound, attempt int) (release func(), leftOut []string, err error) {
	var opened []*openedFile
	release = func() {
		for _, f := range opened {
			f.release()
		}
	}
	var files []Attachment
	var notes []string
	for _, a := range m.Attachments {
		name := a.Name
		if name == "" {
			name = "file"
		}
		rc, err := c.download(ctx, a.Ref)
		if err != nil {
			var perm *PermanentError
			final := errors.As(err, &perm) || attempt >= downloadAttempts
			if ctx.Err() != nil || len(m.Parts) > 0 || !final {
				release()
				return func() {}, nil, fmt.Errorf("open attachment %s: %w", name, err)
			}
			c.log.Warn("agent attachment not sent; the user gets a note instead", zap.Int64("message_id", m.MessageID),
				zap.Int("attempt", attempt), zap.Error(err))
			notes = append(notes, c.unsentFileNote(ctx, m.User, name))
			note := c.texts.Agent(texts.AgentFileDownloadGivenUp, texts.Vars{"name": name, "count": strconv.Itoa(attempt)})
			if perm != nil {
				note = c.texts.Agent(texts.AgentFileNotFetched, texts.Vars{"name": name, "reason": perm.Reason})
			}
			leftOut = append(leftOut, note)
			continue
		}
		f := &openedFile{rc: rc}
		opened = append(opened, f)
		ref := a.Ref
		a.Open = func(ctx context.Context) (io.ReadCloser, error) {
			if rc := f.take(); rc != nil {
				return rc, nil
			}
			return c.download(ctx, ref)
		}
		files = append(files, a)
	}
	m.Attachments = files
	if len(notes) > 0 {
		m.Text = joinNonEmpty("\n\n", m.Text, strings.Join(notes, "\n"))
	}
	return release, leftOut, nil
}

// openedFile is a download opened before Send, handed to the first Open.
type openedFile struct {
	mu sync.Mutex
	rc io.ReadCloser
}

func (f *openedFile) take() io.ReadCloser {
	f.mu.Lock()
	defer f.mu.Unlock()
	rc := f.rc
	f.rc = nil
	return rc
}

func (f *openedFile) release() {
	if rc := f.take(); rc != nil {
		_ = rc.Close()
	}
}

// download streams a OneChat attachment to an adapter. An attachment deleted in OneChat, and
// one the client refuses to fetch (an address that is not allowed, a file over the cap), is a
// permanent failure, also when the refusal comes while streaming; anything else is retried.
func (c *Core) download(ctx context.Context, dataURL string) (io.ReadCloser, error) {
	rc, _, err := c.oc.Download(ctx, dataURL)
	switch {
	case onechat.IsNotFound(err):
		return nil, Permanent("the attachment no longer exists in OneChat", err)
	case onechat.IsDownloadRefused(err):
		return nil, Permanent("the attachment was not downloaded", err)
	case err != nil:
		return nil, err
	}
	return refusalsPermanent{rc}, nil
}

// refusalsPermanent turns a refusal met while streaming (a file without Content-Length that
// passes the cap) into a permanent failure, so the message is not retried for it.
type refusalsPermanent struct{ io.ReadCloser }

func (r refusalsPermanent) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && onechat.IsDownloadRefused(err) {
		err = Permanent("an attachment is larger than the bridge may download", err)
	}
	return n, err
}
