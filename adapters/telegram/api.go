package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onechat/onechat-bridge/adapters/formdata"
	"github.com/onechat/onechat-bridge/bridge"
)

// maxResponseBytes bounds how much of a Bot API response is read. A full getUpdates batch of
// 100 text messages is far below it.
const maxResponseBytes = 16 << 20

// redacted replaces the bot token wherever it would otherwise appear.
const redacted = "<redacted>"

// APIError is an error reply of the Bot API:
// {"ok":false,"error_code":…,"description":…,"parameters":{"retry_after":…}}. Telegram's
// descriptions do not contain the token, so the error is safe to log.
type APIError struct {
	// Method is the Bot API method that failed, e.g. "sendMessage".
	Method string
	// Code is Telegram's error_code, which mirrors the HTTP status: 400, 401, 403, 409, 429, 5xx.
	Code int
	// Description is Telegram's explanation, e.g. "Forbidden: bot was blocked by the user".
	Description string
	// RetryAfter is parameters.retry_after: how long Telegram asks us to wait before the next call.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("telegram %s: %d %s", e.Method, e.Code, e.Description)
}

// envelope is the shape of every Bot API response.
type envelope struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  *struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// call POSTs params as JSON to the Bot API method and decodes the result into dest (unless dest
// is nil). It is our own instead of go-telegram/bot's because that library has no public raw
// request for getUpdates, drops the error code of unlisted errors, and builds every body in a
// goroutine behind an io.Pipe. Every error it returns has the token redacted; a Bot API error
// reply is an *APIError.
func (a *Adapter) call(ctx context.Context, method string, params, dest any) error {
	body, err := json.Marshal(params)
	if err != nil {
		return fmt.Errorf("telegram %s: encode request: %w", method, err)
	}
	return a.do(ctx, method, bytes.NewReader(body), "application/json", dest)
}

// decode reads a Bot API response: the result into dest (unless nil), or an *APIError.
func (a *Adapter) decode(method string, resp *http.Response, dest any) error {
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("telegram %s: read response: %w", method, a.redact(err))
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || (!env.OK && env.ErrorCode == 0) {
		// Not the Bot API talking, e.g. a proxy's error page. The status alone decides; such
		// a failure is always worth retrying, so it is deliberately not an *APIError.
		return fmt.Errorf("telegram %s: unexpected response with HTTP status %d", method, resp.StatusCode)
	}
	if !env.OK {
		apiErr := &APIError{Method: method, Code: env.ErrorCode, Description: a.redactString(env.Description)}
		if env.Parameters != nil && env.Parameters.RetryAfter > 0 {
			apiErr.RetryAfter = time.Duration(env.Parameters.RetryAfter) * time.Second
		}
		return apiErr
	}
	if dest == nil {
		return nil
	}
	if err := json.Unmarshal(env.Result, dest); err != nil {
		return fmt.Errorf("telegram %s: decode result: %w", method, err)
	}
	return nil
}

// redact removes the token from err, before anything wraps it. The token is part of every
// request URL, so it shows up in *url.Error (network errors, timeouts, redirects) and in URL
// parse errors. The *url.Error is fixed in place, so code that unwraps to it does not see the
// token either. Any other error whose text still holds the token is replaced by one that
// hides its chain, keeping only errors.Is (for context.Canceled and the like).
func (a *Adapter) redact(err error) error {
	if err == nil {
		return nil
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = a.redactString(ue.URL)
	}
	if msg := err.Error(); strings.Contains(msg, a.token) {
		return &redactedError{msg: a.redactString(msg), err: err}
	}
	return err
}

func (a *Adapter) redactString(s string) string {
	return strings.ReplaceAll(s, a.token, redacted)
}

// redactedError carries an error whose message had to be rewritten to hide the token. It has
// no Unwrap, since the errors it wraps still hold the token; Is still sees through it.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Is(target error) bool { return errors.Is(e.err, target) }

// classify turns a Bot API failure into the bridge's error classes, so the outbound queue
// knows whether to retry, wait or give up.
func classify(err error) error {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return err // network, timeout, unexpected response: retried
	}
	switch {
	case apiErr.Code == http.StatusForbidden:
		// "bot was blocked by the user", "user is deactivated", "bot can't initiate
		// conversation with a user": in every case nothing we send will arrive.
		reason := "user blocked the bot"
		if !strings.Contains(apiErr.Description, "blocked") {
			reason = "user unreachable: " + apiErr.Description
		}
		return bridge.Unreachable(reason, err)
	case apiErr.Code == http.StatusTooManyRequests:
		after := apiErr.RetryAfter
		if after <= 0 {
			after = time.Second
		}
		return bridge.RateLimited(after, err)
	case apiErr.Code == http.StatusBadRequest:
		reason := apiErr.Description
		if reason == "" {
			reason = "bad request"
		}
		return bridge.Permanent(reason, err)
	default:
		// 401 and 404 are configuration problems that an operator can fix, 409 and 5xx pass:
		// none of them says anything about this message, so it is retried.
		return err
	}
}

// upload is a file sent in a multipart request.
type upload struct {
	field string // the method's parameter: photo, document, voice, …
	name  string
	mime  string
	open  func(ctx context.Context) (io.ReadCloser, error)
}

// callMultipart POSTs fields and files as multipart/form-data, the only way the Bot API
// accepts an upload. Nested objects (reply_markup, reply_parameters, media) are JSON in their
// fields, as Telegram expects. The files are opened here, streamed in order into the request
// and closed when it is done.
func (a *Adapter) callMultipart(ctx context.Context, method string, fields map[string]string, dest any, files ...upload) error {
	body := formdata.NewBody()
	for k, v := range fields {
		if err := body.WriteField(k, v); err != nil {
			return fmt.Errorf("telegram %s: encode request: %w", method, err)
		}
	}
	for _, file := range files {
		rc, err := file.open(ctx)
		if err != nil {
			return fmt.Errorf("telegram %s: open attachment %q: %w", method, file.name, err)
		}
		defer func() { _ = rc.Close() }()
		if err := body.StreamPart(formdata.FileHeader(file.field, file.name, file.mime), rc); err != nil {
			return fmt.Errorf("telegram %s: encode request: %w", method, err)
		}
	}
	rd, err := body.Finish()
	if err != nil {
		return fmt.Errorf("telegram %s: encode request: %w", method, err)
	}
	return a.do(ctx, method, rd, body.ContentType(), dest)
}

// do sends one request with body to method and decodes the envelope; see call.
func (a *Adapter) do(ctx context.Context, method string, body io.Reader, contentType string, dest any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint+method, body)
	if err != nil {
		return fmt.Errorf("telegram %s: build request: %w", method, a.redact(err))
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := a.client.Do(req)
	if err != nil {
		return fmt.Errorf("telegram %s: %w", method, a.redact(err))
	}
	defer func() { _ = resp.Body.Close() }()
	return a.decode(method, resp, dest)
}

// download GETs a file from the Bot API server's file endpoint. The URL holds the token, so it
// never leaves this function: errors are redacted and say only the file's path.
func (a *Adapter) download(ctx context.Context, filePath string) (io.ReadCloser, error) {
	u := a.fileBase + (&url.URL{Path: filePath}).EscapedPath()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("telegram download %s: %w", filePath, a.redact(err))
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("telegram download %s: %w", filePath, a.redact(err))
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		err := fmt.Errorf("telegram download %s: HTTP status %d", filePath, resp.StatusCode)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest {
			// The path came from getFile moments ago: the file is gone or too big for this server.
			return nil, bridge.Permanent("telegram no longer has the file", err)
		}
		return nil, err
	}
	return &redactingBody{rc: resp.Body, a: a}, nil
}

// redactingBody is a download body whose read errors (a reset connection, a timeout: they
// carry the URL) are redacted like every other error.
type redactingBody struct {
	rc io.ReadCloser
	a  *Adapter
}

func (b *redactingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.a.redact(err)
	}
	return n, err
}

func (b *redactingBody) Close() error { return b.rc.Close() }
