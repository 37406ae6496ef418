package bridge

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound is returned by a Store when the thing asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrLeaseLost is returned by a Store when a worker acts on a job it no longer holds: its lease
// expired and another worker took the job over (or the job is finished). The worker must stop
// and leave the job to its new holder.
var ErrLeaseLost = errors.New("the message's lease passed to another worker")

// ErrConversationTaken is returned by Store.SetConversation when the conversation is already
// recorded as another customer's: a conversation never moves from one customer to another,
// since that would send one user's replies to someone else.
var ErrConversationTaken = errors.New("the conversation belongs to another customer")

// PermanentError marks a failure that retrying cannot fix: the user blocked the bot, the
// message is malformed, OneChat rejected it with 422. The queue marks the message failed with
// Reason and moves on.
type PermanentError struct {
	// Reason is a short, secret-free explanation for operators, e.g. "user blocked the bot".
	Reason string
	// Unreachable is set when the user can no longer be reached on the platform at all.
	Unreachable bool
	// Blocked is set when the message is stored without being posted because agents blocked
	// the contact: counted as blocked, not failed.
	Blocked bool
	Err     error
}

func (e *PermanentError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError with the given reason.
func Permanent(reason string, err error) error {
	return &PermanentError{Reason: reason, Err: err}
}

// Unreachable wraps err as a PermanentError that also marks the user unreachable.
func Unreachable(reason string, err error) error {
	return &PermanentError{Reason: reason, Unreachable: true, Err: err}
}

// RateLimitedError says the other side asked us to wait. The queue waits exactly RetryAfter
// before the next attempt and does not count the attempt.
type RateLimitedError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limited, retry after %s: %v", e.RetryAfter, e.Err)
}

func (e *RateLimitedError) Unwrap() error { return e.Err }

// RateLimited wraps err as a RateLimitedError.
func RateLimited(after time.Duration, err error) error {
	return &RateLimitedError{RetryAfter: after, Err: err}
}

// waitError asks the queue to run the job again after a while without counting an attempt:
// the job waits for something to happen elsewhere (OneChat's survey after a resolve), not for
// a failure to pass.
type waitError struct {
	after  time.Duration
	reason string
}

func (e *waitError) Error() string { return e.reason }

// HintError is a failed check with what the operator should do about it: `bridge check` prints
// the error and the hint on its FAIL line.
type HintError struct {
	Err  error
	Hint string
}

func (e *HintError) Error() string { return e.Err.Error() }
func (e *HintError) Unwrap() error { return e.Err }

// Hint attaches what to fix to err (nil stays nil).
func Hint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &HintError{Err: err, Hint: hint}
}

// PartialError is what Adapter.Send returns, together with the ids of every message it created,
// when it delivered the message but left something out that the platform would not take (a
// file over its upload limit, a file whose download kept failing). It is not a failure: the
// core records the message as delivered and shows Notes to the agents in the conversation (a
// private note with ONECHAT_API_ACCESS_TOKEN, else the contact's bridge_last_failure
// attribute), so they learn the user did not get all of it. Send returns it as is, never
// wrapped.
type PartialError struct {
	// Notes name what was left out and why, one line each, for agents in
	// BRIDGE_AGENT_LANGUAGE (Host.Texts().Agent), e.g. "📎 backup.zip (73 MB) is larger than
	// the 50 MB Telegram lets a bot send; send a link instead".
	Notes []string
	// Untold are the files left out that the message itself does not mention to the user.
	// The core tells the user about them in one line after the message, in the user's
	// language (texts.FileLeftOut): "📎 A file (backup.zip, 73.0 MB) could not be sent here;
	// our team has been told". An adapter that puts a line in the file's place leaves it empty.
	Untold []LeftOutFile
}

// LeftOutFile is a file an adapter left out of an agent message for good.
type LeftOutFile struct {
	Name string
	Size int64 // bytes; 0 when unknown
}

func (e *PartialError) Error() string { return "delivered in part: " + strings.Join(e.Notes, "; ") }

// Partial returns a *PartialError with notes, or nil when there are none, so that Send can end
// with `return ids, bridge.Partial(leftOut...)`. The user is not told anything by the core: use
// it when the message says in the file's place that it was left out, else LeftOut.
func Partial(notes ...string) error {
	if len(notes) == 0 {
		return nil
	}
	return &PartialError{Notes: notes}
}

// LeftOut is Partial for files the message does not mention to the user: notes are for agents,
// and the core tells the user, after the message, that files could not be sent and the team
// knows. It returns nil when there are neither notes nor files.
func LeftOut(files []LeftOutFile, notes ...string) error {
	if len(notes) == 0 && len(files) == 0 {
		return nil
	}
	return &PartialError{Notes: notes, Untold: files}
}
