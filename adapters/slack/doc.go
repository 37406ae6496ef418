// Package slack connects Slack users to the bridge: people who write to the app in its
// Messages tab (DMs), and people who write in support channels (SLACK_SUPPORT_CHANNELS, such
// as Slack Connect channels shared with customers), where each top-level message opens a
// ticket whose thread carries the conversation. It uses github.com/slack-go/slack in Socket
// Mode, so the bridge needs no public URL.
//
// # Who is who
//
// A person is "slack:<team id>:<user id>" in OneChat (UserRef.ID "<team>:<user>"), so people of
// different workspaces in one shared channel stay apart. Their name and handle come from
// users.info and their workspace's name from team.info (cached for an hour); the workspace
// reaches the contact as the custom attribute slack_workspace (Inbound.ContactAttributes), so
// an agent sees which customer company a person belongs to. ChatRef.ID is the DM's channel id
// ("D…"), or "<channel>:<thread ts>" for a ticket (the ts of the message that opened it).
//
// # Tickets in support channels
//
// A person's top-level message opens a ticket: its owner is recorded once
// (Host.SetValueIfAbsent("thread.<channel>.<ts>")), the message is delivered, and the ticket is
// acknowledged in that message as SLACK_TICKET_ACK says (an :eyes: reaction by default, or a
// short reply in the thread, or nothing). Replies in the thread, thread_broadcast included,
// reach the same conversation, and the agent's answers go into the thread (never broadcast).
// The next top-level message opens a new ticket in a new thread, and the agent's replies follow
// it (the core answers in the chat of the user's latest message).
//
// A colleague writing in someone else's ticket thread: the message goes to the ticket owner's
// conversation (Inbound.User is the owner, so the thread's messages keep their order in one
// conversation), with the writer named in the text, "**Bob Jones** (colleague of the
// requester) wrote:", so the agent sees who wrote what. Such a message carries no name,
// handle or attributes, so the owner's contact is not renamed after the colleague. Edits,
// deletes and button presses in the thread go the same way. A reply in a thread the bridge
// has no owner for (a message from before the bridge served the channel) is not bridged.
//
// # Receiving: Socket Mode, acks and catch-up
//
// Run calls auth.test once (the bot's user id, bot id and team, to drop the bot's own echoes,
// including the file_share messages of files it uploaded), then runs socketmode's RunContext,
// whose goroutines end with it. The events loop does no more per envelope than converting it,
// storing it with Host.Deliver and only then acknowledging it (AckCtx with a 2 s timeout): an
// envelope whose Deliver failed is not acknowledged, and its chat is handed to the catch-up
// below, so the failed message is read back from history and stored before any later message
// of that chat (whose envelopes wait unacknowledged meanwhile; Slack delivers them again). Event ids
// delivered recently are remembered (4096 of them) so a redelivered envelope is only
// acknowledged; across restarts the queue's dedup key (chat + ts) makes a redelivery a no-op.
// error_bad_message envelopes (inner events slack-go cannot parse) are acknowledged from their
// raw envelope_id, which slack-go does not do. socketmode.OptionDebug is never set: it
// shortens sockets to 6 minutes and logs message text.
//
// On every (re)connect (hello), the adapter lists the chats to catch up: each served channel
// with a stored cursor "slack.channel.<C>" (the ts of its last top-level message delivered)
// and each ticket thread, or thread in a DM, active within 14 days ("slack.thread.<C>.<ts>",
// the ts of its last reply delivered). A goroutine reads them, conversations.history for
// channels and conversations.replies for threads, after their cursors, and delivers each
// message with its cursor moved in the same Deliver, oldest first (per chat or thread: a
// user's messages caught up in a DM and in its threads reach the conversation chat by
// chat). A reply in a thread of a DM ("Reply in thread" under the bot's message) goes to the
// DM's conversation but is caught up as its own thread, since conversations.history never
// lists replies: a thread is known once a reply of it was delivered, or when its parent is
// listed after the DM's cursor; the first reply of a thread under an older message, written
// while the bridge was away longer than Slack retries, is not found. Until a chat is read up to date, its live
// messages are not acknowledged (Slack sends them again, and the catch-up has stored them by
// then): a live message can never move a cursor past older ones the catch-up has not read, so
// messages written while the bridge was away arrive once and in order. Reads are Slack's
// scarcest budget (Tier 1 for apps outside the Marketplace: 1 call a minute, 15 messages a
// page), so the catch-up pages with the cursors and waits out every 429 as told: correct,
// if slow.
//
// Edits (message_changed with `edited` set and a changed text, never an unfurl) and deletes
// (message_deleted) become Inbound.EditOf and DeletedOf, as on Discord. Button presses
// (block_actions on the bot's own messages) become Inbound.Choice; once stored, the envelope is
// acknowledged and the message is updated to show the choice instead of the buttons. Files
// become attachments whose Ref is the file id and its url_private_download; OpenAttachment
// streams the download with the bot token, only from files.slack.com or the configured API
// host, never following a redirect to another host; a file Slack will not give the bot
// becomes a visible note with its name and size.
//
// # Sending
//
// Send posts with chat.postMessage into the DM or the ticket thread: Markdown rendered to
// mrkdwn (markdownToMrkdwn escapes &, < and > and defuses @here, @channel and @everyone;
// link_names and parse are never sent, unfurls are off), split into parts of at most 3,000
// characters without cutting a <…> token. input_select and input_csat become Block Kit buttons
// (the text still carries a fallback for notifications). Files are uploaded with
// files.getUploadURLExternal, a streamed upload and files.completeUploadExternal; Slack wants
// the exact size first, so a file of unknown size is spooled to a temporary file (up to 1 GiB)
// that is removed after. A retry carrying Outbound.Parts sends only the rest. chat.postMessage
// is paced to about one message per second per channel, with bursts of three, before Slack has
// to refuse. Errors: 429 is bridge.RateLimited with Retry-After; not_in_channel,
// channel_not_found, is_archived, account_inactive, user_not_found and user_disabled are
// bridge.Unreachable with a reason the agent sees; other refusals are bridge.Permanent; 5xx,
// network errors and internal_error are retried. Edit and Delete act on every part (chat.update,
// chat.delete, files.delete; message_not_found on a delete is success).
//
// Slack bots cannot show typing (the Web API and Socket Mode have no typing indicator), so the
// adapter is no bridge.Typer. It is a bridge.Checker (auth.test) and a bridge.HealthReporter
// (healthy while the socket is up). The tokens are secrets: they travel only in Authorization
// headers and the token form field, and never appear in an error or a log line.
//
// deploy/slack-app-manifest.yaml creates the Slack app with exactly the scopes and events the
// adapter uses.
package slack
