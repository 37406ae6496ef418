package onechat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// ErrHMAC says OneChat answered 500 on a contact route while we sent an identifier_hash (or the
// inbox demands one). OneChat reports a bad HMAC as a 500, not a 401, so retrying is pointless:
// it is a configuration error. It is reachable from the returned *APIError with errors.Is.
var ErrHMAC = errors.New("onechat rejected the identifier_hash: check that ONECHAT_HMAC_TOKEN is the HMAC token of this inbox (or unset it if identity validation is off)")

// APIError is a non-2xx answer from the Client API. Its text never carries the URL (which holds
// the inbox identifier and the contact's source_id) nor the response body, except the
// validation message of a 422.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Op names the call, for example "create message".
	Op string
	// Message is the "message" of a 422 body, for example "Content is too long (maximum is
	// 150000 characters)"; "" for every other status.
	Message string
	// RetryAfter is the Retry-After of a 429 or 503 when the server sent one (OneChat's default
	// throttle sends none).
	RetryAfter time.Duration

	err error // ErrHMAC for the HMAC case
}

// Error describes the failure without secrets.
func (e *APIError) Error() string {
	s := fmt.Sprintf("%s: onechat answered %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns ErrHMAC for an HMAC failure, else nil.
func (e *APIError) Unwrap() error { return e.err }

// IsNotFound reports whether err is a 404 from OneChat: the inbox, contact session,
// conversation or message does not exist (or was deleted), or the server is too old to have
// the route.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// IsRateLimited reports whether err is OneChat's 429 throttle. The default throttle sends no
// Retry-After; see APIError.RetryAfter.
func IsRateLimited(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests
}

// IsValidation reports whether err is a 422 validation failure (content too long, too many
// messages per minute, invalid email, …): permanent for that input.
func IsValidation(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusUnprocessableEntity
}

// IsRetryable reports whether the same call may succeed later: network errors, timeouts, 429,
// and 500, 502, 503, 504, except a 500 that is an HMAC failure (ErrHMAC). A cancelled context
// is not retryable.
func IsRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrHMAC) {
		return false
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.StatusCode {
		case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF)
}

// transportError marks a failure to talk to OneChat at all (connection refused, reset,
// timeout, a body cut short): always retryable.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// redactURLError replaces the URL of the *url.Error that http.Client.Do returns (it holds the
// inbox identifier, the source_id and, on contact show, the identifier_hash) with the route
// template.
func redactURLError(err error, route string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: route, Err: ue.Err}
	}
	return err
}
