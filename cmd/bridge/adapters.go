package main

import (
	"fmt"
	"strings"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/discord"
	"github.com/onechat/onechat-bridge/adapters/slack"
	"github.com/onechat/onechat-bridge/adapters/telegram"
	"github.com/onechat/onechat-bridge/bridge"
)

// adapterTable is every platform the bridge can serve, one line each: its name and its
// adapter's constructor, whose first parameter is the adapter's Config. Everything else
// cmd/bridge does with adapters is derived from this table: reading each Config from the
// environment (NAME_FILE included), the rule that at least one platform is configured, the
// startup line, buildAdapters and so `bridge run`, `bridge check` and /readyz. Adding a
// platform is adding its line here.
var adapterTable = []adapterEntry{
	entry(telegram.Platform, telegram.New),
	entry(discord.Platform, discord.New),
	entry(slack.Platform, slack.New),
}

// AdapterConfig is what the bridge needs of an adapter's Config, through a pointer to it. The
// Config's env tags name its variables (envDefault gives defaults), and its fields of type
// secret.String are secrets: the startup line shows them only as set or not.
type AdapterConfig interface {
	// Enabled reports whether the operator configured the adapter, typically by setting its
	// token. Only enabled adapters are validated and run.
	Enabled() bool
	// Validate checks the Config and fills its derived values, reporting every problem at
	// once, each error naming its variable and none holding a secret.
	Validate() error
}

// adapterEntry is one line of adapterTable.
type adapterEntry struct {
	platform bridge.Platform
	// newConfig returns a new zero Config of the adapter for env to fill.
	newConfig func() AdapterConfig
	// build builds the adapter from a Config newConfig returned, once validated.
	build func(cfg AdapterConfig, h bridge.Host, logger *zap.Logger) (bridge.Adapter, error)
}

// entry makes a table line from an adapter's constructor, whose Config type C is inferred.
func entry[C any, PC interface {
	*C
	AdapterConfig
}, A bridge.Adapter](platform bridge.Platform, newAdapter func(C, bridge.Host, *zap.Logger) (A, error)) adapterEntry {
	return adapterEntry{
		platform:  platform,
		newConfig: func() AdapterConfig { return PC(new(C)) },
		build: func(cfg AdapterConfig, h bridge.Host, logger *zap.Logger) (bridge.Adapter, error) {
			a, err := newAdapter(*cfg.(PC), h, logger.Named(string(platform)))
			if err != nil {
				return nil, err // not a non-nil interface holding a nil adapter
			}
			return a, nil
		},
	}
}

// adapterConfig is one adapter's configuration as read for this run.
type adapterConfig struct {
	entry adapterEntry
	cfg   AdapterConfig
}

// newAdapterConfigs returns a zero Config for every line of adapterTable, in its order.
func newAdapterConfigs() []adapterConfig {
	out := make([]adapterConfig, len(adapterTable))
	for i, e := range adapterTable {
		out[i] = adapterConfig{entry: e, cfg: e.newConfig()}
	}
	return out
}

// enablingVars names the variables that enable an adapter: those that, set alone, make its
// Config Enabled. Found by trying each, so an adapter declares nothing beyond Enabled.
func (e adapterEntry) enablingVars() []string {
	params, err := env.GetFieldParams(e.newConfig())
	if err != nil {
		return nil
	}
	var names []string
	for _, p := range params {
		c := e.newConfig()
		if env.ParseWithOptions(c, env.Options{Environment: map[string]string{p.Key: "x"}}) == nil && c.Enabled() {
			names = append(names, p.Key)
		}
	}
	return names
}

// validateAdapters validates every enabled adapter's Config and checks that at least one is
// enabled; the error for none names every platform's enabling variables.
func validateAdapters(adapters []adapterConfig) []error {
	var errs []error
	var vars, platforms []string
	anyEnabled := false
	for _, a := range adapters {
		if a.cfg.Enabled() {
			anyEnabled = true
			if err := a.cfg.Validate(); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		v := a.entry.enablingVars()
		if len(v) == 0 {
			v = []string{strings.ToUpper(string(a.entry.platform)) + "_*"}
		}
		vars = append(vars, strings.Join(v, " and "))
		platforms = append(platforms, string(a.entry.platform))
	}
	if !anyEnabled {
		errs = append(errs, fmt.Errorf("%s: at least one platform must be configured (%s); see README.md",
			strings.Join(vars, " or "), strings.Join(platforms, ", ")))
	}
	return errs
}

// enabledPlatforms names the enabled adapters, for the startup line.
func enabledPlatforms(adapters []adapterConfig) []string {
	var names []string
	for _, a := range adapters {
		if a.cfg.Enabled() {
			names = append(names, string(a.entry.platform))
		}
	}
	return names
}

// buildAdapters builds every enabled adapter. `bridge run` and `bridge check` share it, so an
// adapter in adapterTable is both run and checked.
func buildAdapters(cfg Config, logger *zap.Logger) ([]bridge.AdapterBuilder, error) {
	var builders []bridge.AdapterBuilder
	for _, a := range cfg.adapters {
		if !a.cfg.Enabled() {
			continue
		}
		builders = append(builders, func(h bridge.Host) (bridge.Adapter, error) {
			ad, err := a.entry.build(a.cfg, h, logger)
			if err == nil && ad.Platform() != a.entry.platform {
				return nil, fmt.Errorf("adapter table: the %s line builds a %s adapter", a.entry.platform, ad.Platform())
			}
			return ad, err
		})
	}
	return builders, nil
}
