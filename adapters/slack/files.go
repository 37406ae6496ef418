package slack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/onechat/onechat-bridge/bridge"
)

// filesHost serves url_private links on Slack.
const filesHost = "files.slack.com"

// sameHostRedirects follows a redirect only to the host the download started on: the bot
// token must never travel elsewhere.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		return http.ErrUseLastResponse
	}
	return nil
}

// OpenAttachment implements bridge.AttachmentOpener: it streams a person's file from its
// url_private_download with the bot token. Only links on files.slack.com or the configured
// API host are opened. A file Slack will not give the bot (deleted, no access: Slack then
// redirects to its sign-in page) is a permanent error, which the core turns into a visible
// note with the file's name and size.
func (a *Adapter) OpenAttachment(ctx context.Context, att bridge.Attachment) (io.ReadCloser, error) {
	_, link, ok := strings.Cut(att.Ref, " ")
	u, err := url.Parse(link)
	if !ok || err != nil || u.Host == "" || u.User != nil {
		return nil, bridge.Permanent("not a slack file", nil)
	}
	if u.Hostname() != filesHost && u.Host != a.apiURL.Host {
		return nil, bridge.Permanent("the file's link is not on Slack", nil)
	}
	if u.Scheme != "https" && u.Scheme != a.apiURL.Scheme {
		return nil, bridge.Permanent("the file's link is not https", nil)
	}
	refused := bridge.Permanent(fmt.Sprintf("Slack did not let the bot download it (%s)", sizeText(att.Size)), nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, bridge.Permanent("bad file link", nil)
	}
	req.Header.Set("Authorization", "Bearer "+a.botToken)
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download slack file: %w", a.redact(err))
	}
	if final := resp.Request.URL; final.Query().Get("redir") != "" {
		resp.Body.Close()
		return nil, refused
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp.Body, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		resp.Body.Close()
		return nil, bridge.RateLimited(retryAfter(resp.Header.Get("Retry-After")), errors.New("download slack file: 429"))
	case resp.StatusCode >= 500:
		resp.Body.Close()
		return nil, fmt.Errorf("download slack file: %s", resp.Status)
	}
	resp.Body.Close()
	return nil, refused
}

// retryAfter reads a Retry-After header in seconds; 30 s when it is missing or unreadable.
func retryAfter(h string) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return 30 * time.Second
}
