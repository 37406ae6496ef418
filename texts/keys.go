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
	// FileLeftOut follows an agent message the platform would not take one of the files of
	// (too large to send, refused). Placeholder: {file}, its name and size ("backup.zip, 73.0 MB").
	FileLeftOut Key = "file_left_out"
	// FilesLeftOut is FileLeftOut for several files. Placeholder: {files}, their names and sizes
	// ("a.zip, 73.0 MB; b.iso, 4.0 GB").
	FilesLeftOut Key = "files_left_out"
	// TicketThreadName is the name of a Discord ticket thread. Placeholder: {name}, the user's.
	TicketThreadName Key = "ticket_thread_name"
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
	// AgentFileNotBridgedFrom says a user's file could not be taken from the platform.
	// Placeholders: {name} (with its size when known), {platform}.
	AgentFileNotBridgedFrom Key = "agent_file_not_bridged_from"
	// AgentFileOverDownloadLimit says a user's file is over what a bot may download from the
	// platform. Placeholders: {name}, {size}, {limit}, {platform}.
	AgentFileOverDownloadLimit Key = "agent_file_over_download_limit"
	// AgentFileOverBridgeLimit says a user's file is over what the bridge passes on.
	// Placeholders: {name}, {size}, {limit}.
	AgentFileOverBridgeLimit Key = "agent_file_over_bridge_limit"
	// AgentForwarded notes that the user forwarded a message whose author is not known.
	AgentForwarded Key = "agent_forwarded"
	// AgentForwardedFrom heads a message the user forwarded. Placeholder: {name}, its author.
	AgentForwardedFrom Key = "agent_forwarded_from"
	// AgentColleagueWrote heads a message someone other than the ticket's owner wrote in the
	// owner's ticket. Placeholder: {name}, the writer's (already formatted).
	AgentColleagueWrote Key = "agent_colleague_wrote"
	// AgentSticker describes a sticker that could not be passed on as an image.
	// Placeholder: {name}.
	AgentSticker Key = "agent_sticker"
	// AgentStickerAnimated describes an animated sticker (its file follows). Placeholder: {emoji}.
	AgentStickerAnimated Key = "agent_sticker_animated"
	// AgentStickerVideo describes a video sticker (its file follows). Placeholder: {emoji}.
	AgentStickerVideo Key = "agent_sticker_video"
	// AgentLocation is a location the user shared. Placeholder: {link}, a map link.
	AgentLocation Key = "agent_location"
	// AgentLiveLocation is a live location the user shared. Placeholder: {link}, a map link.
	AgentLiveLocation Key = "agent_live_location"
	// AgentContact is a contact card the user shared. Placeholders: {name}, {phone}.
	AgentContact Key = "agent_contact"
	// AgentContactUser is a contact card of a user of the platform.
	// Placeholders: {name}, {phone}, {platform}, {id}.
	AgentContactUser Key = "agent_contact_user"
	// AgentPoll says the user sent a poll the bridge cannot show. Placeholder: {question}.
	AgentPoll Key = "agent_poll"
	// AgentDice is a die (or other animated emoji game) the user rolled.
	// Placeholders: {emoji}, {value}.
	AgentDice Key = "agent_dice"
	// AgentUnsupported says the user sent a kind of message the bridge cannot show.
	// Placeholder: {platform}.
	AgentUnsupported Key = "agent_unsupported"
	// AgentQuotedPhoto and the other AgentQuoted keys stand for a message without text the
	// user replied to, in the quote under AgentInReplyTo.
	AgentQuotedPhoto Key = "agent_quoted_photo"
	// AgentQuotedSticker stands for a sticker replied to. Placeholder: {emoji}.
	AgentQuotedSticker Key = "agent_quoted_sticker"
	// AgentQuotedVoice stands for a voice message replied to.
	AgentQuotedVoice Key = "agent_quoted_voice"
	// AgentQuotedFile stands for a file replied to. Placeholder: {name}.
	AgentQuotedFile Key = "agent_quoted_file"
	// AgentQuotedVideo stands for a video replied to.
	AgentQuotedVideo Key = "agent_quoted_video"
	// AgentQuotedAudio stands for an audio file replied to.
	AgentQuotedAudio Key = "agent_quoted_audio"
	// AgentQuotedLocation stands for a location replied to.
	AgentQuotedLocation Key = "agent_quoted_location"
	// AgentFileTooLargeToSend says an agent's file is over the platform's upload limit for
	// bots. Placeholders: {name}, {size}, {limit}, {platform}.
	AgentFileTooLargeToSend Key = "agent_file_too_large_to_send"
	// AgentFileTooLargeHere says the platform refused an agent's file as too large for the
	// chat. Placeholders: {name}, {platform}.
	AgentFileTooLargeHere Key = "agent_file_too_large_here"
	// AgentFileDownloadGivenUp says an agent's file was left out after its download from
	// OneChat kept failing. Placeholders: {name}, {count}.
	AgentFileDownloadGivenUp Key = "agent_file_download_given_up"
	// AgentFileNotFetched says an agent's file was left out because the bridge may not or
	// cannot fetch it. Placeholders: {name}, {reason}.
	AgentFileNotFetched Key = "agent_file_not_fetched"
)

// Keys returns every key of the catalogue, users' texts first.
func Keys() []Key {
	return []Key{
		Greeting, TicketAck, SlowDown, Blocked, TicketClosed, TicketReopened, ThreadClosedPanel,
		ThreadClosedChannel, NotYourTicket, CloseButton,
		ReopenButton, CSATPrompt, CSATThanks, ChooseOption, FileTooLarge, FileNotSent, FileDownloadFailed,
		FileEmpty, FileRefused, YoungAccount, PanelText, PanelButton, TicketOpened,
		TicketOpenFailed, TicketWelcome, TicketsUnavailable, NotYourQuestion, TryAgain,
		FileLeftOut, FilesLeftOut, TicketThreadName,
		AgentInReplyTo, AgentUserClosed, AgentUserReopened, AgentPartlyDelivered, AgentNotDelivered,
		AgentEditNotDelivered, AgentDeleteNotDelivered, AgentUnreachable, AgentEdited, AgentNowReads, AgentDeleted, AgentFileNotBridged, AgentFileNotBridgedReason,
		AgentFileNotBridgedFrom, AgentFileOverDownloadLimit, AgentFileOverBridgeLimit, AgentForwarded, AgentForwardedFrom,
		AgentColleagueWrote, AgentSticker, AgentStickerAnimated, AgentStickerVideo, AgentLocation, AgentLiveLocation,
		AgentContact, AgentContactUser, AgentPoll, AgentDice, AgentUnsupported,
		AgentQuotedPhoto, AgentQuotedSticker, AgentQuotedVoice, AgentQuotedFile, AgentQuotedVideo, AgentQuotedAudio, AgentQuotedLocation,
		AgentFileTooLargeToSend, AgentFileTooLargeHere, AgentFileDownloadGivenUp, AgentFileNotFetched,
	}
}
