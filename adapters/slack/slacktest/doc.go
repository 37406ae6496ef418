// Package slacktest is an in-memory fake of Slack for hermetic tests of the Slack adapter: the
// Web API methods the adapter calls, file upload and download, and a Socket Mode websocket that
// delivers events in envelopes and redelivers the ones not acknowledged in time.
//
// It speaks Slack's wire protocol, so the real slack-go client and its socketmode package work
// against it unchanged:
//
//	srv := slacktest.NewServer(t)
//	api := slack.New(srv.BotToken, slack.OptionAPIURL(srv.APIURL), slack.OptionAppLevelToken(srv.AppToken))
//	sm := socketmode.New(api)
//
// Web API calls are POSTs to APIURL+method with a form (or JSON) body; the bot token goes in
// the token field or as a Bearer header, the app-level token (apps.connections.open only) as a
// Bearer header. Every answer is HTTP 200 with {"ok":false,"error":"…"} on failure, except rate
// limits (HTTP 429 with Retry-After) and injected server errors (HTTP 5xx with an HTML body), as
// on Slack. No answer ever contains a token.
//
// Socket Mode follows https://api.slack.com/apis/connections/socket-implement: the socket opens
// with a hello frame; events_api and interactive envelopes must be acknowledged by sending
// {"envelope_id":…} back; an envelope not acknowledged within the ack timeout (3 s unless
// WithAckTimeout) is redelivered with the same event_id, retry_attempt+1 and retry_reason
// "timeout", up to 3 retries; events that happen while no socket is open are held and
// delivered as retries when one connects. The fake pings every socket (slack-go treats a socket
// without pings as dead).
//
// Tests play the users (UserSays, UserEdits, UserDeletes, UserPresses, Unfurl), read what the
// bot did (Messages, ThreadReplies, BotPosts, Reactions, Calls, Events), wait for changes
// (WaitFor and the Wait helpers block on a change signal, never on a timer) and inject faults
// (Inject, RateLimit, FailWith, SetPostRateLimit, DropSockets, SendDisconnect, Redeliver,
// SendMalformed).
//
// Where Slack's behaviour is not documented, the fake picks the stricter reading and its doc
// comment says so: code that passes here should pass on Slack.
package slacktest
