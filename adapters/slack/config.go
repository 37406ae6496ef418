package slack

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// DefaultAPIURL is Slack's Web API.
const DefaultAPIURL = "https://slack.com/api/"

// Ticket acknowledgement modes (SLACK_TICKET_ACK).
const (
	// AckReaction adds a reaction to the person's top-level message.
	AckReaction = "reaction"
	// AckReply answers in the new ticket's thread with a short line.
	AckReply = "reply"
	// AckNone says nothing until an agent answers.
	AckNone = "none"
)

// Config configures the Slack adapter. cmd/bridge fills it from the environment.
type Config struct {
	// BotToken is the Bot User OAuth Token (xoxb-…). It is a secret.
	BotToken string `env:"SLACK_BOT_TOKEN"`
	// AppToken is the app-level token (xapp-…, scope connections:write) Socket Mode connects
	// with. It is a secret.
	AppToken string `env:"SLACK_APP_TOKEN"`
	// APIURL is the Web API base, DefaultAPIURL by default; tests point it at a fake.
	APIURL string `env:"SLACK_API_URL" envDefault:"https://slack.com/api/"`
	// SupportChannels are the ids (C…, or G… for old private channels) of channels the bot
	// serves besides its DMs, such as Slack Connect channels shared with customers.
	SupportChannels []string `env:"SLACK_SUPPORT_CHANNELS" envSeparator:","`
	// TicketAck says how a new ticket in a support channel is acknowledged: AckReaction (the
	// default), AckReply or AckNone.
	TicketAck string `env:"SLACK_TICKET_ACK" envDefault:"reaction"`
	// HTTPClient, when set, sends the Web API requests and downloads (tests put a faulty
	// transport in it); by default a client with a 30 s timeout.
	HTTPClient *http.Client `env:"-"`
}

// Enabled says whether the Slack adapter is configured at all (a bot token is set).
func (c *Config) Enabled() bool { return c.BotToken != "" }

// String describes the configuration with the tokens redacted, so that logging a Config by
// accident does not leak them.
func (c Config) String() string {
	red := func(s string) string {
		if s == "" {
			return ""
		}
		return "<redacted>"
	}
	return fmt.Sprintf("slack.Config{BotToken:%s AppToken:%s APIURL:%s SupportChannels:%v TicketAck:%s}",
		red(c.BotToken), red(c.AppToken), c.APIURL, c.SupportChannels, c.TicketAck)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// Validate checks the configuration and returns one error per problem, each naming its
// variable. It never prints a token. Empty APIURL and TicketAck mean their defaults.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.BotToken == "":
		errs = append(errs, errors.New("SLACK_BOT_TOKEN is required"))
	case !strings.HasPrefix(c.BotToken, "xoxb-"):
		errs = append(errs, errors.New("SLACK_BOT_TOKEN must be a bot token starting with xoxb-"))
	case !printable(c.BotToken):
		errs = append(errs, errors.New("SLACK_BOT_TOKEN has spaces or characters that are not printable ASCII"))
	}
	switch {
	case c.AppToken == "":
		errs = append(errs, errors.New("SLACK_APP_TOKEN is required (an app-level token with connections:write, for Socket Mode)"))
	case !strings.HasPrefix(c.AppToken, "xapp-"):
		errs = append(errs, errors.New("SLACK_APP_TOKEN must be an app-level token starting with xapp-"))
	case !printable(c.AppToken):
		errs = append(errs, errors.New("SLACK_APP_TOKEN has spaces or characters that are not printable ASCII"))
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, errors.New("SLACK_API_URL must be an absolute http or https URL"))
		case u.User != nil:
			errs = append(errs, errors.New("SLACK_API_URL must not carry credentials"))
		}
	}
	for _, ch := range c.SupportChannels {
		if !isChannelID(strings.TrimSpace(ch)) {
			errs = append(errs, fmt.Errorf("SLACK_SUPPORT_CHANNELS: %q is not a Slack channel id (C… or G…)", ch))
		}
	}
	switch c.TicketAck {
	case "", AckReaction, AckReply, AckNone:
	default:
		errs = append(errs, fmt.Errorf("SLACK_TICKET_ACK must be reaction, reply or none, not %q", c.TicketAck))
	}
	return errors.Join(errs...)
}

func printable(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) < 0
}

// isChannelID says whether s looks like a Slack conversation id: an upper-case letter (C, G
// or D) and upper-case letters and digits.
func isChannelID(s string) bool {
	if len(s) < 3 || len(s) > 32 || (s[0] != 'C' && s[0] != 'G' && s[0] != 'D') {
		return false
	}
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// isID says whether s looks like a Slack id of any kind (user, team, file…).
func isID(s string) bool {
	if len(s) < 2 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// isTS says whether s is a Slack message timestamp ("1712345678.000200").
func isTS(s string) bool {
	sec, frac, ok := strings.Cut(s, ".")
	if !ok || sec == "" || frac == "" || len(sec) > 12 || len(frac) > 6 {
		return false
	}
	for _, r := range sec + frac {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
