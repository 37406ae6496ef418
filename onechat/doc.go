// Package onechat is a client for the contact-side OneChat (Chatwoot-compatible) Client API and
// its ActionCable websocket.
//
// Client speaks the REST routes under /public/api/v1/inboxes/{inbox}/…: it creates and shows
// contact sessions, conversations and messages, classifies failures once (IsNotFound,
// IsRetryable, ErrHMAC) and keeps the credentials that sit in its URLs (the inbox identifier
// and the contact's source_id) out of every error string.
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
