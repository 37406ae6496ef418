// Package onechat is a client for the contact-side OneChat (Chatwoot-compatible) Client API and
// its ActionCable websocket.
//
// Client speaks every route under /public/api/v1/inboxes/{inbox}/…: inbox show; contact
// create, show (which verifies the session with the HMAC pair) and update; conversation list,
// create, show, resolve, typing and last seen; message list, create (JSON, or a streamed
// multipart upload) and update (submitted values, CSAT answers). Download streams attachments,
// following the storage redirect and falling back to the base URL when OneChat's FRONTEND_URL
// host is wrong. It classifies failures once (Classify: retryable, rate limited, permanent,
// configuration, unsupported) and keeps the credentials that sit in its URLs (the inbox
// identifier, the contact's source_id, an attachment's signed id) out of every error and log.
//
// Every request waits on a client-side budget (Options.RequestsPerSecond, 45/s by default), so
// one bridge stays under OneChat's 3000 requests/min per IP; a 429 pauses every caller at once.
// Routes that older servers lack (conversation show, toggle_status, toggle_typing,
// update_last_seen) are detected by their 404 and a probe, and switched off with one warning:
// the calls then return ErrUnsupported, and show falls back to the conversation list.
//
// Cable holds RoomChannel subscriptions over one websocket. It reconnects on its own, resends
// every subscription after each welcome, retries subscriptions that are never confirmed and
// tells its handler about every confirmation, because the cable has no replay and the caller
// must catch up over REST after each one.
//
// The package knows nothing about the bridge that uses it. Decoding is deliberately lenient:
// OneChat versions differ in which keys they send, REST and cable shapes differ, and
// timestamps arrive as integers, floats or ISO strings.
package onechat
