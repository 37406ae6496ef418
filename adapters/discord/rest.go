package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/onechat/onechat-bridge/adapters/formdata"
	"github.com/onechat/onechat-bridge/bridge"
)

// JSON error codes of the Discord API the adapter decides on.
const (
	codeUnknownChannel      = 10003
	codeUnknownMessage      = 10008
	codeMissingAccess       = 50001
	codeCannotSendToUser    = 50007
	codeMissingPermissions  = 50013
	codeInvalidFormBody     = 50035
	codeEntityTooLarge      = 40005
	codeThreadArchived      = 50083
	codeMaxActiveThreads    = 160006
	codeUnknownInteraction  = 10062
	codeInteractionAnswered = 40060
)

// APIError is a non-2xx answer of the Discord REST API. It never holds the token: requests carry
// it in a header, and neither the path nor Discord's answer contains it.
type APIError struct {
	Method string
	Path   string
	Status int
	// Code is Discord's JSON error code (e.g. 50007), 0 when the body had none.
	Code    int
	Message string
	// RetryAfter is set on 429: how long Discord asked us to wait.
	RetryAfter time.Duration
	// Global is set when a 429 is the bot's global limit rather than a route's.
	Global bool
}

func (e *APIError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("discord %s %s: %d %s (code %d)", e.Method, e.Path, e.Status, e.Message, e.Code)
	}
	return fmt.Sprintf("discord %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

// hasCode reports whether err is an APIError with the given JSON error code.
func hasCode(err error, code int) bool {
	var apiErr *APIError
	return errors.As(err, &apiErr) && apiErr.Code == code
}

// classify turns a REST failure into the bridge's error classes: 429 is RateLimited with
// Discord's retry_after, 50007 Unreachable, other 4xx (but 401 and 408, which a retry or an
// operator can fix) Permanent, everything else transient.
func classify(err error) error {
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	switch {
	case apiErr.Status == http.StatusTooManyRequests:
		return bridge.RateLimited(apiErr.RetryAfter, err)
	case apiErr.Code == codeCannotSendToUser:
		return bridge.Unreachable("the user does not accept direct messages from the bot", err)
	case apiErr.Status == http.StatusUnauthorized, apiErr.Status == http.StatusRequestTimeout:
		return err
	case apiErr.Status >= 400 && apiErr.Status < 500:
		return bridge.Permanent("discord rejected the request: "+apiErr.Message, err)
	}
	return err
}

// uploadFile is one file of a multipart request: Body is streamed into the request as it is
// sent, never held in memory whole.
type uploadFile struct {
	Name string
	MIME string
	Body io.Reader
}

// rest sends requests to the Discord REST API. Each request first waits for its turn (pacer:
// below Discord's limits and what its headers said, bounded by ctx and maxPaceWait), so a
// burst does not run into 429s; a 429 that comes anyway is returned as an *APIError with
// RetryAfter, not slept on, so the bridge's queue waits instead of a worker.
type rest struct {
	base   string // API base without a trailing slash, e.g. https://discord.com/api/v10
	token  string
	client *http.Client
	pacer  *pacer
}

// userAgent is the form Discord requires for bots.
const userAgent = "DiscordBot (https://github.com/onechat/onechat-bridge, 1)"

// do sends a JSON request (body may be nil) and decodes a JSON answer into out (may be nil).
func (r *rest) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	ctype := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("discord %s %s: encode: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
		ctype = "application/json"
	}
	return r.send(ctx, method, path, ctype, rd, out)
}

// doFiles sends payload as payload_json together with files as files[i], the form Discord
// documents for uploads. The files are read while the request is sent; the caller closes them.
func (r *rest) doFiles(ctx context.Context, method, path string, payload any, files []uploadFile, out any) error {
	b, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("discord %s %s: encode: %w", method, path, err)
	}
	body := formdata.NewBody()
	pw, err := body.CreatePart(formdata.FieldHeader("payload_json", "application/json"))
	if err == nil {
		_, err = pw.Write(b)
	}
	for i, f := range files {
		if err != nil {
			break
		}
		err = body.StreamPart(formdata.FileHeader(fmt.Sprintf("files[%d]", i), f.Name, f.MIME), f.Body)
	}
	var rd io.Reader
	if err == nil {
		rd, err = body.Finish()
	}
	if err != nil {
		return fmt.Errorf("discord %s %s: build upload: %w", method, path, err)
	}
	return r.send(ctx, method, path, body.ContentType(), rd, out)
}

// redactPath hides the interaction token in interaction and webhook paths: it lets anyone answer
// as the bot for 15 minutes, so it stays out of errors and logs like the bot token.
func redactPath(path string) string {
	for _, prefix := range []string{"/interactions/", "/webhooks/"} {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok {
			continue
		}
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) >= 2 {
			parts[1] = "<token>"
		}
		return prefix + strings.Join(parts, "/")
	}
	return path
}

func (r *rest) send(ctx context.Context, method, fullPath, ctype string, body io.Reader, out any) error {
	path := redactPath(fullPath)
	if err := r.pacer.wait(ctx, method, path); err != nil {
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			return apiErr
		}
		return fmt.Errorf("discord %s %s: wait for the rate limit: %w", method, path, err)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+fullPath, body)
	if err != nil {
		return fmt.Errorf("discord %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bot "+r.token)
	req.Header.Set("User-Agent", userAgent)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		// *url.Error holds the URL, which may hold an interaction token: report the cause only.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("discord %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("discord %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := decodeAPIError(method, path, resp, data)
		r.pacer.observe(method, path, resp.Header, apiErr)
		return apiErr
	}
	r.pacer.observe(method, path, resp.Header, nil)
	if out == nil || resp.StatusCode == http.StatusNoContent || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("discord %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// decodeAPIError reads Discord's error body ({"code","message"} or, on 429,
// {"retry_after","global"}), falling back to the Retry-After header for a 429 whose body is not
// JSON (e.g. a proxy's).
func decodeAPIError(method, path string, resp *http.Response, data []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
	var body struct {
		Code       int     `json:"code"`
		Message    string  `json:"message"`
		RetryAfter float64 `json:"retry_after"`
		Global     bool    `json:"global"`
	}
	if json.Unmarshal(data, &body) == nil {
		e.Code = body.Code
		if body.Message != "" {
			e.Message = body.Message
		}
		e.Global = body.Global
		if body.RetryAfter > 0 {
			e.RetryAfter = time.Duration(body.RetryAfter * float64(time.Second))
		}
	}
	if resp.StatusCode == http.StatusTooManyRequests && e.RetryAfter == 0 {
		if s, err := strconv.ParseFloat(resp.Header.Get("Retry-After"), 64); err == nil && s > 0 {
			e.RetryAfter = time.Duration(s * float64(time.Second))
		} else {
			e.RetryAfter = time.Second
		}
	}
	return e
}
