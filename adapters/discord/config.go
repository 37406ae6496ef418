package discord

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onechat/onechat-bridge/adapters/secret"
)

// Config configures the Discord adapter. The env tags name the bridge's environment
// variables; DISCORD_BOT_TOKEN enables the adapter. A zero field means its default, so a
// Config built in code needs only Token. Validate is the one place its rules live: New calls
// it, and fills the derived values from it.
type Config struct {
	// Token is the bot token from the Developer Portal, without the "Bot " prefix.
	Token secret.String `env:"DISCORD_BOT_TOKEN"`
	// APIURL is the REST API base: DefaultAPIURL when empty. A URL without a path gets
	// "/api/v10" appended; any other path (a proxy's prefix) is used as is. The gateway URL is
	// taken from this API's GET /gateway answer.
	APIURL string `env:"DISCORD_API_URL" envDefault:"https://discord.com/api/v10"`
	// SupportChannelID turns on support-channel mode: the bot keeps a "Contact support" panel
	// in this text channel and opens a private thread per ticket under it. This mode needs the
	// privileged Message Content intent (Developer Portal → Bot → Privileged Gateway Intents),
	// because messages in threads carry no content without it.
	SupportChannelID string `env:"DISCORD_SUPPORT_CHANNEL_ID"`
	// StaffRoleID, in support-channel mode, is a role added to every ticket thread.
	StaffRoleID string `env:"DISCORD_STAFF_ROLE_ID"`
	// MinAccountAge, when above zero (a duration such as 168h), refuses a conversation (a DM or
	// a ticket) from a Discord account younger than this, by the time in its id: the user is
	// told once, politely, and nothing of theirs is stored. Fresh accounts are what spam floods
	// are made of. "0" (the default) or empty turns it off.
	MinAccountAge string `env:"DISCORD_MIN_ACCOUNT_AGE" envDefault:"0"`

	// CDNURL serves sticker images: DefaultCDNURL when empty.
	CDNURL string
	// HTTPClient sends REST requests and downloads. When nil, a client with a 30 s timeout.
	HTTPClient *http.Client
	// HelloTimeout bounds the wait for the gateway's HELLO after a dial: 15 s when zero.
	HelloTimeout time.Duration
	// MaxUploadSize is the largest file the adapter uploads (Discord's limit for the bot's
	// servers): 10 MiB when zero. A larger agent file is named in the message instead.
	MaxUploadSize int64
	// MaxDownloadSize is the largest file of a user's the adapter passes on: DefaultMaxDownload
	// when zero. A larger one, by the size Discord declares, is not downloaded; the agent sees
	// a note naming it and its size.
	MaxDownloadSize int64

	// Derived by Validate.
	apiURL, cdnURL string
	minAccountAge  time.Duration
}

// DefaultMaxDownload is the largest user file passed on when Config.MaxDownloadSize is zero.
const DefaultMaxDownload = 100 << 20

// Enabled reports whether the bridge is to run the adapter: a bot token is set.
func (cfg *Config) Enabled() bool { return cfg.Token != "" }

// Validate checks every setting, fills the derived ones, and reports all problems at once,
// one error per problem naming its variable. No error holds the token.
func (cfg *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	switch token := string(cfg.Token); {
	case token == "":
		bad("DISCORD_BOT_TOKEN", "is required (Developer Portal → your application → Bot → Reset Token)")
	case strings.HasPrefix(token, "Bot "):
		bad("DISCORD_BOT_TOKEN", "give the token without the \"Bot \" prefix")
	case strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
		bad("DISCORD_BOT_TOKEN", "has spaces or characters that are not printable ASCII")
	}
	var err error
	if cfg.apiURL, err = normalizeAPIURL(cfg.APIURL); err != nil {
		bad("DISCORD_API_URL", "%v, got %q", err, cfg.APIURL)
	}
	cfg.cdnURL = cfg.CDNURL
	if cfg.cdnURL == "" {
		cfg.cdnURL = DefaultCDNURL
	}
	if u, err := url.Parse(cfg.cdnURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("discord: CDN URL must be an absolute http or https URL"))
	}
	cfg.cdnURL = strings.TrimRight(cfg.cdnURL, "/")
	if cfg.SupportChannelID != "" && !isSnowflake(cfg.SupportChannelID) {
		bad("DISCORD_SUPPORT_CHANNEL_ID", "must be a Discord channel id (digits), got %q", cfg.SupportChannelID)
	}
	if cfg.StaffRoleID != "" && !isSnowflake(cfg.StaffRoleID) {
		bad("DISCORD_STAFF_ROLE_ID", "must be a Discord role id (digits), got %q", cfg.StaffRoleID)
	}
	if cfg.StaffRoleID != "" && cfg.SupportChannelID == "" {
		bad("DISCORD_STAFF_ROLE_ID", "only applies with DISCORD_SUPPORT_CHANNEL_ID")
	}
	cfg.minAccountAge = 0
	if v := strings.TrimSpace(cfg.MinAccountAge); v != "" && v != "0" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 10*365*24*time.Hour {
			bad("DISCORD_MIN_ACCOUNT_AGE", "must be 0 (off) or a duration such as 168h, got %q", cfg.MinAccountAge)
		} else {
			cfg.minAccountAge = d
		}
	}
	return errors.Join(errs...)
}

// normalizeAPIURL applies DefaultAPIURL and appends /api/v10 to a bare host.
func normalizeAPIURL(s string) (string, error) {
	if s == "" {
		return DefaultAPIURL, nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("must be an http:// or https:// URL")
	}
	if u.User != nil {
		return "", errors.New("must not carry credentials")
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/api/v" + gatewayVersion
	}
	return strings.TrimRight(u.String(), "/"), nil
}
