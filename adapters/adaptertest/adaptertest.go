// Package adaptertest is the conformance suite every platform adapter runs from its own test,
// against its own fake platform server. It checks the parts of the bridge.Adapter contract that
// every platform shares, so a new adapter gets them tested by writing a small driver instead of
// the same tests again:
//
//	func TestConformance(t *testing.T) {
//		adaptertest.Run(t, adaptertest.Platform{
//			Name:      Platform,
//			Token:     testToken,
//			TextLimit: 4096,
//			Unit:      textsplit.UTF16,
//			Start:     func(t adaptertest.T) adaptertest.Driver { return newDriver(t) },
//		})
//	}
//
// Run runs each check of Checks as a subtest; each starts a fresh fake with Platform.Start and
// builds adapters over it with Driver.NewAdapter, a bridgetest.MemHost and a zap logger whose
// lines the suite reads. The checks:
//
//   - RunStopsCleanly: Run returns nil when its context is cancelled and leaves no goroutine
//     behind (goroutines that existed before the adapter was built, HTTP keep-alive connection
//     goroutines on either side and Platform.IgnoreGoroutines are not counted).
//   - RedeliversFailedDeliver: a message whose Host.Deliver failed is delivered again, so it is
//     stored.
//   - NoDoubleDeliveryAfterRestart: after Run is stopped and a new adapter runs on the same host,
//     the messages written meanwhile arrive and none delivered before is delivered again (the
//     adapter resumes from its cursor).
//   - SplitsLongText: a text of about 2.5 times Platform.TextLimit becomes several messages,
//     each at most TextLimit long in Platform.Unit, which together hold the text.
//   - RetryWithPartsSendsRest: a Send that carries Outbound.Parts of an earlier attempt creates
//     only the messages after those.
//   - ClassifiesErrors: for each Fault the driver injects, Send's error is classified:
//     RateLimit is bridge.RateLimited with the platform's wait, Unreachable is bridge.Unreachable,
//     ClientError bridge.Permanent (not Unreachable), ServerError and NetworkError neither (the
//     queue retries them).
//   - EditDeleteEveryPart: when the adapter is a bridge.Editor, Edit changes every part of a long
//     message; when it is a bridge.Deleter, Delete removes every part.
//   - TokenNeverLeaks: Platform.Token never appears in an error (of Send, with every fault, of
//     Edit, Delete and OpenAttachment), a log line or its fields, or a metric of
//     prometheus.DefaultGatherer and Platform.Metrics. Every other check also fails on a log line
//     holding the token.
//   - AttachmentsStream: Send uploads a file of Platform.LargeFile bytes (64 MiB by default)
//     from a generator without holding it: the live heap when the adapter has read the last byte
//     is less than a quarter of the file above what it was before. When the driver is a
//     FileSender and the adapter a bridge.AttachmentOpener, a file the user sent is streamed the
//     same way.
//
// The suite takes a T rather than *testing.T so that its own test can run each check against an
// adapter broken on purpose and see it fail. Checks wait on signals (the host's and the fake's
// changes), never on timers; a generous deadline only bounds a hung check.
//
// Nothing here is specific to a platform: what differs is in Platform and the Driver.
package adaptertest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/textsplit"
	"github.com/onechat/onechat-bridge/bridge"
)

// T is the part of *testing.T the suite uses.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Failed() bool
	Cleanup(func())
}

var _ T = (*testing.T)(nil)

// Platform describes the adapter under test and how to reach its fake.
type Platform struct {
	// Name is the adapter's bridge.Platform.
	Name bridge.Platform
	// Token is the secret the adapter authenticates with (the bot token); make it distinctive.
	Token string
	// TextLimit is the longest text one platform message may hold, counted in Unit.
	TextLimit int
	Unit      textsplit.Unit
	// LargeFile is the size of the file AttachmentsStream sends: 64 MiB when zero. Use the
	// largest the adapter and the fake accept.
	LargeFile int64
	// RateLimitWait is the wait the RateLimit fault asks for: 3 s when zero. Use a value the
	// platform can express (whole seconds for Telegram).
	RateLimitWait time.Duration
	// Start starts a fresh fake platform for one check and returns a driver over it; the driver
	// closes what it started with t.Cleanup.
	Start func(t T) Driver
	// IgnoreGoroutines are goroutines that may outlive Run without being a leak (the fake's own
	// background work, for example).
	IgnoreGoroutines []goleak.Option
	// Metrics, if set, is gathered besides prometheus.DefaultGatherer by TokenNeverLeaks.
	Metrics prometheus.Gatherer
}

// Driver plays the platform's users and reads and breaks the fake, for one check.
type Driver interface {
	// NewAdapter builds an adapter connected to the fake, with host and logger. The suite calls
	// it again with the same host to restart the adapter as a new process would.
	NewAdapter(t T, host bridge.Host, logger *zap.Logger) bridge.Adapter
	// Ready blocks until a running adapter is connected to the fake, so that what the user writes
	// from now on reaches it (a platform that pushes events only reaches a connected bot).
	Ready(t T, a bridge.Adapter)
	// Target returns a user and the chat where the bridge answers them; messages sent there
	// must be accepted by the fake.
	Target() (bridge.UserRef, bridge.ChatRef)
	// UserWrites makes the target user write each text as a message of its own, in order, in
	// their chat. It is also called while no adapter runs: the messages then wait on the
	// platform.
	UserWrites(t T, texts ...string)
	// FailNextSend makes the next request that creates a message in the target chat fail
	// with f.
	FailNextSend(t T, f Fault)
	// Received returns the messages the bot created in chat, oldest first, as the user sees
	// them now. A deleted message is either missing or marked Deleted.
	Received(t T, chat bridge.ChatRef) []Message
}

// FileSender is implemented by drivers whose platform lets users send files.
type FileSender interface {
	// UserSendsFile makes the target user send a file named name with content data in their
	// chat; the adapter delivers it with an attachment its AttachmentOpener streams.
	UserSendsFile(t T, name string, data []byte)
}

// Message is a message the bot created, as the fake holds it.
type Message struct {
	ID string
	// Text is the text (or caption) as the user sees it, formatting removed.
	Text    string
	Edited  bool
	Deleted bool
	// FileName and FileSize describe an uploaded file, if any.
	FileName string
	FileSize int64
}

// FaultKind is a failure a Driver makes the fake answer with.
type FaultKind int

// The faults of FailNextSend.
const (
	// RateLimit is the platform's 429 asking to wait Fault.RetryAfter.
	RateLimit FaultKind = iota
	// Unreachable is the platform saying the user cannot be reached: they blocked the bot,
	// closed their DMs or left.
	Unreachable
	// ClientError is any other 4xx refusal of the request (a malformed message, say).
	ClientError
	// ServerError is a 5xx.
	ServerError
	// NetworkError is a request that fails before an answer comes (see FaultyTransport).
	NetworkError
)

func (k FaultKind) String() string {
	switch k {
	case RateLimit:
		return "rate limit"
	case Unreachable:
		return "unreachable user"
	case ClientError:
		return "other 4xx"
	case ServerError:
		return "5xx"
	case NetworkError:
		return "network error"
	}
	return "unknown fault"
}

// Fault is a failure to inject.
type Fault struct {
	Kind FaultKind
	// RetryAfter is the wait a RateLimit asks for.
	RetryAfter time.Duration
}

// Check is one property of the contract.
type Check struct {
	Name string
	Func func(t T, p Platform)
}

// Checks returns the suite's checks, in the order Run runs them.
func Checks() []Check {
	return []Check{
		{"RunStopsCleanly", checkRunStopsCleanly},
		{"RedeliversFailedDeliver", checkRedeliversFailedDeliver},
		{"NoDoubleDeliveryAfterRestart", checkNoDoubleDeliveryAfterRestart},
		{"SplitsLongText", checkSplitsLongText},
		{"RetryWithPartsSendsRest", checkRetryWithPartsSendsRest},
		{"ClassifiesErrors", checkClassifiesErrors},
		{"EditDeleteEveryPart", checkEditDeleteEveryPart},
		{"TokenNeverLeaks", checkTokenNeverLeaks},
		{"AttachmentsStream", checkAttachmentsStream},
	}
}

// Run runs every check as a subtest of t. Do not call t.Parallel in the test that calls it:
// RunStopsCleanly counts the process's goroutines.
func Run(t *testing.T, p Platform) {
	t.Helper()
	for _, c := range Checks() {
		t.Run(c.Name, func(t *testing.T) { c.Func(t, p) })
	}
}
