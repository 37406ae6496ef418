package main

import (
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/discord"
	"github.com/onechat/onechat-bridge/bridge"
)

// DiscordSettings are the Discord adapter's settings. DISCORD_BOT_TOKEN enables it;
// DISCORD_SUPPORT_CHANNEL_ID turns on support-channel mode (a "Contact support" panel and a
// private thread per ticket), which needs the privileged Message Content intent enabled for the
// bot in the Discord Developer Portal.
type DiscordSettings struct {
	BotToken         Secret `env:"DISCORD_BOT_TOKEN"`
	APIURL           string `env:"DISCORD_API_URL" envDefault:"https://discord.com/api/v10"`
	SupportChannelID string `env:"DISCORD_SUPPORT_CHANNEL_ID"`
	StaffRoleID      string `env:"DISCORD_STAFF_ROLE_ID"`
}

func (s *DiscordSettings) enabled() bool { return s.BotToken != "" }

// validate checks the settings of an enabled adapter, one error per problem, each naming its
// variable.
func (s *DiscordSettings) validate() []error {
	if !s.enabled() {
		return nil
	}
	var errs []error
	if strings.IndexFunc(string(s.BotToken), func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		errs = append(errs, fmt.Errorf("DISCORD_BOT_TOKEN: has spaces or characters that are not printable ASCII"))
	} else if strings.HasPrefix(string(s.BotToken), "Bot ") {
		errs = append(errs, fmt.Errorf("DISCORD_BOT_TOKEN: give the token without the \"Bot \" prefix"))
	}
	if !isHTTPURL(s.APIURL) {
		errs = append(errs, fmt.Errorf("DISCORD_API_URL: must be an http:// or https:// URL, got %q", s.APIURL))
	}
	if s.SupportChannelID != "" && !isDiscordID(s.SupportChannelID) {
		errs = append(errs, fmt.Errorf("DISCORD_SUPPORT_CHANNEL_ID: must be a Discord channel id (digits), got %q", s.SupportChannelID))
	}
	if s.StaffRoleID != "" && !isDiscordID(s.StaffRoleID) {
		errs = append(errs, fmt.Errorf("DISCORD_STAFF_ROLE_ID: must be a Discord role id (digits), got %q", s.StaffRoleID))
	}
	if s.StaffRoleID != "" && s.SupportChannelID == "" {
		errs = append(errs, fmt.Errorf("DISCORD_STAFF_ROLE_ID: only applies with DISCORD_SUPPORT_CHANNEL_ID"))
	}
	return errs
}

func isDiscordID(s string) bool {
	n, err := strconv.ParseInt(s, 10, 64)
	return err == nil && n > 0
}

// logFields describes the effective settings for the startup log line, without secrets.
func (s *DiscordSettings) logFields() []zap.Field {
	return []zap.Field{
		zap.Bool("discord", s.enabled()),
		zap.String("discord_api_url", s.APIURL),
		zap.Bool("discord_support_channel_mode", s.SupportChannelID != ""),
	}
}

// adapter builds the Discord adapter.
func (s *DiscordSettings) adapter(h bridge.Host, logger *zap.Logger) (bridge.Adapter, error) {
	return discord.New(discord.Config{
		Token:            string(s.BotToken),
		APIURL:           s.APIURL,
		SupportChannelID: s.SupportChannelID,
		StaffRoleID:      s.StaffRoleID,
	}, h, logger.Named("discord"))
}
