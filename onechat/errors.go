package onechat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ErrHMAC says OneChat answered 500 on a contact route while we sent an identifier_hash (or the
// inbox demands one). OneChat reports a bad HMAC as a 500, not a 401, so retrying is pointless:
// it is a configuration error. It is reachable from the returned *APIError with errors.Is.
var ErrHMAC = errors.New("onechat rejected the identifier_hash: check that ONECHAT_HMAC_TOKEN is the HMAC token of this inbox (or unset it if identity validation is off)")

// ErrHMACRequired says OneChat answered 500 on a contact route sent without identifier_hash,
// and the inbox has identity validation on: the bridge has no HMAC token but needs one. Like
// ErrHMAC it is a configuration error, reachable from the *APIError with errors.Is.
var ErrHMACRequired = errors.New("onechat inbox requires identity validation: set ONECHAT_HMAC_TOKEN to the HMAC token shown in the inbox settings")

// ErrUnsupported says the OneChat server is too old to have the route (typing, last seen,
// resolve). The call did nothing; the feature stays off for the life of the Client, after one
// warning log. Callers treat it as "skip", not as a failure to retry.
var ErrUnsupported = errors.New("not supported by this onechat server")

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
	// RetryAfter is how long to wait before trying again: for a 429, the server's Retry-After
	// or, since OneChat's throttle sends none, the pause the client's request budget chose;
	// for a 503, the server's Retry-After if any; 0 otherwise.
	RetryAfter time.Duration

	err error // ErrHMAC or ErrHMACRequired for the configuration cases
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

// Unwrap returns ErrHMAC or ErrHMACRequired for an HMAC failure, ErrAccessToken for a refused
// Application API token, else nil.
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

// ErrorClass is the one decision a caller makes about a failed call.
type ErrorClass int

// Error classes, from Classify.
const (
	// ClassNone: no error.
	ClassNone ErrorClass = iota
	// ClassRetryable: the same call may succeed later (network, timeouts, 500 on routes
	// without HMAC, 502, 503, 504); retry with backoff.
	ClassRetryable
	// ClassRateLimited: OneChat's 429; wait APIError.RetryAfter, then retry, without counting
	// an attempt.
	ClassRateLimited
	// ClassPermanent: retrying cannot help: 404 (gone), 422 (with its message), other 4xx, an
	// undecodable answer, a refused download (*DownloadRefusedError).
	ClassPermanent
	// ClassConfig: the bridge is misconfigured (ErrHMAC, ErrHMACRequired, ErrAccessToken);
	// every call of the kind fails until an operator fixes ONECHAT_HMAC_TOKEN or
	// ONECHAT_API_ACCESS_TOKEN.
	ClassConfig
	// ClassUnsupported: the server lacks the route (ErrUnsupported); skip the feature.
	ClassUnsupported
	// ClassCanceled: the caller's context was cancelled.
	ClassCanceled
)

// String names the class for logs and metrics.
func (c ErrorClass) String() string {
	switch c {
	case ClassNone:
		return "none"
	case ClassRetryable:
		return "retryable"
	case ClassRateLimited:
		return "rate_limited"
	case ClassPermanent:
		return "permanent"
	case ClassConfig:
		return "config"
	case ClassUnsupported:
		return "unsupported"
	case ClassCanceled:
		return "canceled"
	}
	return "ErrorClass(" + strconv.Itoa(int(c)) + ")"
}

// Classify sorts an error of this package into exactly one class, following the protocol's
// rules: HMAC failures arrive as 500s on contact routes, the throttle as a bare 429, a deleted
// record and an old server's missing route as the same 404 (the client resolves the latter
// into ErrUnsupported itself).
func Classify(err error) ErrorClass {
	if err == nil {
		return ClassNone
	}
	switch {
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.Is(err, ErrHMAC), errors.Is(err, ErrHMACRequired), errors.Is(err, ErrAccessToken):
		return ClassConfig
	case errors.Is(err, ErrUnsupported):
		return ClassUnsupported
	}
	if IsDownloadRefused(err) {
		// Before the transport checks: a refused dial arrives inside a *net.OpError.
		return ClassPermanent
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch ae.StatusCode {
		case http.StatusTooManyRequests:
			return ClassRateLimited
		case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable,
			http.StatusGatewayTimeout, http.StatusRequestTimeout:
			return ClassRetryable
		}
		if ae.StatusCode >= 500 {
			return ClassRetryable
		}
		return ClassPermanent
	}
	var te *transportError
	var ne net.Error
	if errors.As(err, &te) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return ClassRetryable
	}
	return ClassPermanent
}

// IsRetryable reports whether the same call may succeed later: network errors, timeouts, 429,
// and 5xx, except a 500 that is an HMAC failure (ErrHMAC, ErrHMACRequired). A cancelled
// context, ErrUnsupported and permanent answers are not retryable.
func IsRetryable(err error) bool {
	switch Classify(err) {
	case ClassRetryable, ClassRateLimited:
		return true
	}
	return false
}

// IsPermanent reports whether retrying err cannot help: a 404, a 422, another 4xx, or an
// answer that could not be decoded.
func IsPermanent(err error) bool { return Classify(err) == ClassPermanent }

// IsConfigError reports whether err is a misconfiguration an operator must fix (the HMAC
// token, the Application API access token): retrying is pointless, and the message names the
// variable.
func IsConfigError(err error) bool { return Classify(err) == ClassConfig }

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
