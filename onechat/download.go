package onechat

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// routeDataURL stands in for an attachment URL in errors and logs: its path holds the blob's
// signed id, which grants access to the file.
const routeDataURL = "{data_url}"

// maxRedirects is how many redirects a download follows (Active Storage needs one).
const maxRedirects = 10

// Download opens the attachment at dataURL (an Attachment.DataURL) for reading. It follows the
// redirect to the storage service and streams: the body is never held in memory, so the caller
// copies it where it goes (a platform upload) and must Close it. The caller's ctx bounds the
// whole transfer; the client's HTTP timeout bounds only the wait for response headers, so a
// large file is not cut off.
//
// OneChat builds data_url from its FRONTEND_URL, which is often wrong or unreachable from the
// bridge (OneChat behind a proxy, an internal hostname). So when dataURL's host cannot be
// reached at all (DNS failure, connection refused, dial timeout, a certificate for another
// name) or answers 404, and it is not the configured base URL's host, the same path and query
// are fetched from the base URL instead. A host that needed this is remembered (with one
// warning): later downloads, and redirects, go to the base URL directly.
//
// Only allowed origins are ever contacted: the base URL's and Options.StorageOrigins. A
// data_url on another host (OneChat's FRONTEND_URL, or whatever an integration stored) is
// fetched by its path and query from the base URL, never from that host; a redirect to an
// origin that is not allowed is refused; and every connection is checked when it is made
// (download_guard.go). A refusal, and a file larger than Options.MaxDownloadBytes (by its
// Content-Length, or while streaming when it has none), is a *DownloadRefusedError.
//
// Errors never contain the URL (its path is a credential). A 404 (from both hosts) is
// permanent: the attachment was deleted.
func (c *Client) Download(ctx context.Context, dataURL string) (io.ReadCloser, DownloadInfo, error) {
	const op = "download attachment"
	base, err := url.Parse(c.base)
	if err != nil {
		return nil, DownloadInfo{}, fmt.Errorf("%s: invalid base URL", op)
	}
	u, err := url.Parse(dataURL)
	if err != nil || (u.IsAbs() && u.Scheme != "http" && u.Scheme != "https") || (!u.IsAbs() && u.Host != "") {
		return nil, DownloadInfo{}, fmt.Errorf("%s: invalid data_url", op)
	}
	if !u.IsAbs() {
		u = onBase(base, u)
	}
	filename := path.Base(u.Path)

	target := u
	if !c.guard.allowed(u) {
		if _, seen := c.foreignHosts.LoadOrStore(u.Host, struct{}{}); !seen {
			c.log.Warn("attachment URL is not on an allowed origin; downloading its path through the base URL instead (check OneChat's FRONTEND_URL, or list the origin in ONECHAT_STORAGE_ORIGINS)",
				zap.String("data_url_host", u.Host), zap.String("base_host", base.Host))
		}
		target = onBase(base, u)
	} else if _, bad := c.badHosts.Load(u.Host); bad {
		target = onBase(base, u)
	}
	rc, info, firstHop, err := c.fetch(ctx, op, base, target, filename)
	if err == nil {
		return rc, info, nil
	}
	if target.Host == base.Host || !firstHop || !fallbackWorthy(err) {
		return nil, DownloadInfo{}, err
	}
	rc, info, _, err2 := c.fetch(ctx, op, base, onBase(base, u), filename)
	if err2 != nil {
		return nil, DownloadInfo{}, fmt.Errorf("%w (after the data_url host failed: %w)", err2, err)
	}
	if _, seen := c.badHosts.LoadOrStore(u.Host, struct{}{}); !seen {
		c.log.Warn("attachment host unreachable or wrong; downloading through the base URL instead (check OneChat's FRONTEND_URL)",
			zap.String("data_url_host", u.Host), zap.String("base_host", base.Host), zap.Error(err))
	}
	return rc, info, nil
}

// fetch GETs target, following redirects. firstHop reports whether a failure happened on
// target itself rather than on a redirect.
func (c *Client) fetch(ctx context.Context, op string, base, target *url.URL, filename string) (_ io.ReadCloser, _ DownloadInfo, firstHop bool, _ error) {
	if err := c.budget.wait(ctx); err != nil {
		return nil, DownloadInfo{}, true, fmt.Errorf("%s: wait for the request budget: %w", op, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target.String(), nil)
	if err != nil {
		cancel()
		return nil, DownloadInfo{}, true, fmt.Errorf("%s: invalid data_url", op)
	}

	if !c.guard.allowed(target) {
		cancel()
		return nil, DownloadInfo{}, true, fmt.Errorf("%s: %w", op, refuseURL(target, "the data_url"))
	}

	var redirected atomic.Bool
	hc := *c.dl // Timeout 0: the body may take long; headers are bounded below, the rest by ctx
	hc.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		redirected.Store(true)
		if _, bad := c.badHosts.Load(r.URL.Host); bad {
			*r.URL = *onBase(base, r.URL)
			r.Host = ""
		}
		if !c.guard.allowed(r.URL) {
			return refuseURL(r.URL, "a redirect")
		}
		return nil
	}
	headerTimeout := c.http.Timeout
	if headerTimeout <= 0 {
		headerTimeout = defaultHTTPTimeout
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(headerTimeout, func() { timedOut.Store(true); cancel() })

	start := time.Now()
	resp, err := hc.Do(req)
	timer.Stop()
	firstHop = !redirected.Load()
	if err != nil {
		cancel()
		c.log.Debug("onechat download failed", zap.Duration("duration", time.Since(start)), zap.Bool("first_hop", firstHop))
		if timedOut.Load() {
			err = fmt.Errorf("no response headers within %s: %w", headerTimeout, context.DeadlineExceeded)
		}
		if errors.Is(err, context.Canceled) && errors.Is(ctx.Err(), context.Canceled) {
			return nil, DownloadInfo{}, firstHop, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		return nil, DownloadInfo{}, firstHop, fmt.Errorf("%s: %w", op, &transportError{err: redactURLError(err, routeDataURL)})
	}
	c.log.Debug("onechat download", zap.Int("status", resp.StatusCode), zap.Duration("duration", time.Since(start)),
		zap.Bool("redirected", !firstHop))
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
		resp.Body.Close()
		cancel()
		ae := &APIError{StatusCode: resp.StatusCode, Op: op}
		if resp.StatusCode == http.StatusTooManyRequests {
			ae.RetryAfter = c.budget.throttled(parseRetryAfter(resp.Header.Get("Retry-After")))
		}
		return nil, DownloadInfo{}, firstHop, ae
	}
	c.budget.succeeded()
	if resp.ContentLength > c.maxDownload {
		resp.Body.Close()
		cancel()
		return nil, DownloadInfo{}, firstHop, fmt.Errorf("%s: %w", op, c.tooLarge())
	}

	info := DownloadInfo{ContentType: resp.Header.Get("Content-Type"), Filename: filename, Size: resp.ContentLength}
	if info.ContentType == "" {
		info.ContentType = "application/octet-stream"
	}
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		info.Filename = params["filename"]
	}
	if info.Filename == "" || info.Filename == "/" || info.Filename == "." {
		info.Filename = "file"
	}
	return &downloadBody{body: resp.Body, cancel: cancel, left: c.maxDownload, tooLarge: c.tooLarge}, info, firstHop, nil
}

// tooLarge is the refusal of a file over the download cap.
func (c *Client) tooLarge() error {
	return &DownloadRefusedError{Reason: fmt.Sprintf("the file is larger than the %s limit (ONECHAT_MAX_ATTACHMENT_SIZE)", formatBytes(c.maxDownload))}
}

// formatBytes writes n as MB with one decimal where that is exact enough, else as bytes.
func formatBytes(n int64) string {
	if n >= 1<<20 {
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// fallbackWorthy reports whether a first-hop failure says "this host is the wrong one": it
// cannot be reached at all, presents a certificate for another name, or does not know the
// path. Timeouts after connecting and 5xx say the right host is busy, so they do not count.
func fallbackWorthy(err error) bool {
	if IsDownloadRefused(err) {
		return false
	}
	if IsNotFound(err) {
		return true
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &dnsErr), errors.As(err, &certErr):
		return true
	case errors.As(err, &opErr):
		return opErr.Op == "dial"
	}
	return false
}

// onBase returns u's path and query on the base URL's scheme, host and path prefix.
func onBase(base, u *url.URL) *url.URL {
	out := *base
	out.Path = strings.TrimRight(base.Path, "/") + u.Path
	if u.RawPath != "" {
		out.RawPath = strings.TrimRight(base.EscapedPath(), "/") + u.RawPath
	} else {
		out.RawPath = ""
	}
	out.RawQuery = u.RawQuery
	out.Fragment = ""
	return &out
}

// downloadBody is a download's body: reading errors are transport errors (retryable, the URL
// redacted), and Close releases the request's context.
type downloadBody struct {
	body   io.ReadCloser
	cancel context.CancelFunc
	// left is how many more bytes the cap allows; a body without Content-Length that goes
	// past it fails with tooLarge instead of being read on.
	left     int64
	tooLarge func() error
}

func (d *downloadBody) Read(p []byte) (int, error) {
	if d.left < 0 {
		return 0, d.tooLarge()
	}
	if int64(len(p)) > d.left {
		p = p[:d.left+1] // one byte more than allowed tells a file over the cap
	}
	n, err := d.body.Read(p)
	d.left -= int64(n)
	if d.left < 0 {
		return 0, d.tooLarge()
	}
	if err != nil && err != io.EOF {
		err = &transportError{err: redactURLError(err, routeDataURL)}
	}
	return n, err
}

func (d *downloadBody) Close() error {
	err := d.body.Close()
	d.cancel()
	return err
}
