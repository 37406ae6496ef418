package texts

// Key names one text of the catalogue. Keys are the names operators use in
// BRIDGE_MESSAGES_FILE, so they never change once released.
type Key string

// Texts the bridge says to users, in the user's language.
const (
	// Greeting answers a Telegram user's /start.
	Greeting Key = "greeting"
	// TicketAck answers the first message of a Slack support-channel ticket.
	TicketAck Key = "ticket_ack"
	// SlowDown tells a user who writes faster than the bridge passes messages on to slow down.
	SlowDown Key = "slow_down"
	// Blocked tells a blocked user that their messages no longer reach the team.
	Blocked Key = "blocked"
	// TicketClosed tells the user their ticket was closed (by them or by an agent).
	TicketClosed Key = "ticket_closed"
	// TicketReopened tells the user their ticket was reopened.
	TicketReopened Key = "ticket_reopened"
	// ThreadClosedPanel is posted in a Discord ticket thread before it is archived and locked.
	// Placeholder: {button}, the label of the support panel's button.
	ThreadClosedPanel Key = "thread_closed_panel"
	// ThreadClosedChannel is posted in a closed Slack ticket thread: a new top-level message in
	// the channel opens the next ticket.
	ThreadClosedChannel Key = "thread_closed_channel"
	// NotYourTicket answers someone pressing Close ticket or Reopen in another person's ticket.
	NotYourTicket Key = "not_your_ticket"
	// CloseButton is the label of the button that closes a ticket.
	CloseButton Key = "close_button"
	// ReopenButton is the label of the button that reopens a closed ticket.
	ReopenButton Key = "reopen_button"
	// CSATPrompt asks the user to rate the conversation, above the rating buttons.
	CSATPrompt Key = "csat_prompt"
	// CSATThanks thanks the user for their rating or comment.
	CSATThanks Key = "csat_thanks"
	// ChooseOption stands above, or in, a list of options the agent offers.
	ChooseOption Key = "choose_option"
	// FileTooLarge says an agent's file is larger than the platform lets a bot send.
	// Placeholders: {name}, {platform}.
	FileTooLarge Key = "file_too_large"
	// FileNotSent says an agent's file could not be fetched (refused, too large, deleted).
	// Placeholder: {name}.
	FileNotSent Key = "file_not_sent"
	// FileDownloadFailed says an agent's file could not be read from OneChat.
	// Placeholders: {name}, {count}.
	FileDownloadFailed Key = "file_download_failed"
	// FileEmpty says an agent's file is empty. Placeholder: {name}.
	FileEmpty Key = "file_empty"
	// FileRefused says the platform refused an agent's file. Placeholders: {name}, {platform}.
	FileRefused Key = "file_refused"
	// YoungAccount refuses a Discord account younger than DISCORD_MIN_ACCOUNT_AGE.
	// Placeholder: {date}, when the account is old enough.
	YoungAccount Key = "young_account"
	// PanelText is the Discord support panel's message.
	PanelText Key = "panel_text"
	// PanelButton is the label of the Discord support panel's button.
	PanelButton Key = "panel_button"
	// TicketOpened tells the user where their Discord ticket thread is. Placeholder: {thread}.
	TicketOpened Key = "ticket_opened"
	// TicketOpenFailed says the Discord ticket thread could not be opened.
	TicketOpenFailed Key = "ticket_open_failed"
	// TicketWelcome opens a Discord ticket thread. Placeholder: {user}, the user's mention.
	TicketWelcome Key = "ticket_welcome"
	// TicketsUnavailable answers a panel button pressed where tickets are not served.
	TicketsUnavailable Key = "tickets_unavailable"
	// NotYourQuestion answers someone pressing a button of a question asked to somebody else.
	NotYourQuestion Key = "not_your_question"
	// TryAgain answers a button press that could not be handled.
	TryAgain Key = "try_again"
)

// Texts the bridge says to agents, in BRIDGE_AGENT_LANGUAGE.
const (
	// AgentInReplyTo heads the quote of the message a user replied to.
	AgentInReplyTo Key = "agent_in_reply_to"
	// AgentUserClosed is posted in the conversation when the user closed their ticket.
	AgentUserClosed Key = "agent_user_closed"
	// AgentUserReopened is posted in the conversation when the user reopened their ticket.
	AgentUserReopened Key = "agent_user_reopened"
	// AgentPartlyDelivered heads the private note that part of an agent's message (a file) did
	// not reach the user; the parts left out follow, one per line.
	AgentPartlyDelivered Key = "agent_partly_delivered"
	// AgentNotDelivered is the private note that an agent's message did not reach the user.
	// Placeholder: {reason}.
	AgentNotDelivered Key = "agent_not_delivered"
	// AgentEditNotDelivered is the private note that an agent's edit did not reach the user.
	// Placeholder: {reason}.
	AgentEditNotDelivered Key = "agent_edit_not_delivered"
	// AgentDeleteNotDelivered is the private note that an agent's deletion did not reach the
	// user. Placeholder: {reason}.
	AgentDeleteNotDelivered Key = "agent_delete_not_delivered"
	// AgentUnreachable is the reason when the user cannot be reached at all.
	// Placeholders: {platform}, {reason} (the platform's words).
	AgentUnreachable Key = "agent_unreachable"
	// AgentEdited heads the note that a user edited a message.
	AgentEdited Key = "agent_edited"
	// AgentNowReads introduces the new text of a message the user edited.
	AgentNowReads Key = "agent_now_reads"
	// AgentDeleted heads the note that a user deleted a message.
	AgentDeleted Key = "agent_deleted"
	// AgentFileNotBridged says a user's file could not be passed on. Placeholder: {name}.
	AgentFileNotBridged Key = "agent_file_not_bridged"
	// AgentFileNotBridgedReason says why a user's file could not be passed on.
	// Placeholders: {name}, {reason}.
	AgentFileNotBridgedReason Key = "agent_file_not_bridged_reason"
)

// Keys returns every key of the catalogue, users' texts first.
func Keys() []Key {
	return []Key{
		Greeting, TicketAck, SlowDown, Blocked, TicketClosed, TicketReopened, ThreadClosedPanel,
		ThreadClosedChannel, NotYourTicket, CloseButton,
		ReopenButton, CSATPrompt, CSATThanks, ChooseOption, FileTooLarge, FileNotSent, FileDownloadFailed,
		FileEmpty, FileRefused, YoungAccount, PanelText, PanelButton, TicketOpened,
		TicketOpenFailed, TicketWelcome, TicketsUnavailable, NotYourQuestion, TryAgain,
		AgentInReplyTo, AgentUserClosed, AgentUserReopened, AgentPartlyDelivered, AgentNotDelivered,
		AgentEditNotDelivered, AgentDeleteNotDelivered, AgentUnreachable, AgentEdited, AgentNowReads, AgentDeleted, AgentFileNotBridged, AgentFileNotBridgedReason,
	}
}
