package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/onechat/onechat-bridge/adapters/secret"
	"github.com/onechat/onechat-bridge/onechat"
)

// Secret is a configuration value that never prints. It is the adapters' secret type, so the
// startup line redacts the bridge's own secrets and the adapters' alike.
type Secret = secret.String

// Config is the bridge's whole configuration, read from the environment.
type Config struct {
	DatabaseURL Secret `env:"DATABASE_URL"`

	OneChatBaseURL  string `env:"ONECHAT_BASE_URL"`
	InboxIdentifier Secret `env:"ONECHAT_INBOX_IDENTIFIER"`
	HMACToken       Secret `env:"ONECHAT_HMAC_TOKEN"`
	CableURL        string `env:"ONECHAT_CABLE_URL"`
	// OnResolved is "new" (a user's message after resolve opens a new conversation) or
	// "reopen" (it reopens the resolved one).
	OnResolved string `env:"ONECHAT_ON_RESOLVED" envDefault:"new"`
	// StorageOrigins lists, comma-separated, the origins besides ONECHAT_BASE_URL's that agent
	// attachments may be downloaded from (where OneChat's storage redirects: S3, GCS, Azure).
	StorageOrigins string `env:"ONECHAT_STORAGE_ORIGINS"`
	// MaxAttachmentSize caps one agent attachment download: bytes, or with KB, MB or GB.
	MaxAttachmentSize string `env:"ONECHAT_MAX_ATTACHMENT_SIZE" envDefault:"100MB"`
	// AccessToken (an agent's or agent bot's access token) and AccountID turn on OneChat's
	// Application API: private notes that tell agents what did not reach the user, and each
	// new conversation's platform label and custom attributes. Both or neither.
	AccessToken Secret `env:"ONECHAT_API_ACCESS_TOKEN"`
	AccountID   int64  `env:"ONECHAT_ACCOUNT_ID"`

	Tuning TuningSettings
	Texts  TextSettings

	AdminAddr string `env:"BRIDGE_ADMIN_ADDR" envDefault:"127.0.0.1:9090"`
	// Pprof serves Go's runtime profiles (/debug/pprof/) on the admin listener, for measuring
	// memory and CPU; off by default, since a profile shows the process's internals.
	Pprof bool `env:"BRIDGE_PPROF" envDefault:"false"`
	// ShutdownTimeout bounds how long the bridge takes to stop after SIGTERM. It must stay
	// below the container's stop grace period (Docker's default is 10 s), or the process is
	// killed before it has handed in-flight messages back to the queue.
	ShutdownTimeout string `env:"BRIDGE_SHUTDOWN_TIMEOUT" envDefault:"9s"`
	LogLevel        string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat       string `env:"LOG_FORMAT" envDefault:"json"`

	shutdownTimeout   time.Duration
	storageOrigins    []string
	maxAttachmentSize int64
	// adapters holds each adapter's own Config, one per line of adapterTable.
	adapters []adapterConfig
}

// newConfig returns a zero configuration with a zero Config for every adapter.
func newConfig() Config { return Config{adapters: newAdapterConfigs()} }

// targets are the structs the environment is read into: the bridge's own settings and each
// adapter's Config.
func (c *Config) targets() []any {
	t := []any{c}
	for _, a := range c.adapters {
		t = append(t, a.cfg)
	}
	return t
}

// envParams lists every variable the configuration reads, the adapters' included.
func envParams() ([]env.FieldParams, error) {
	cfg := newConfig()
	var all []env.FieldParams
	for _, t := range cfg.targets() {
		params, err := env.GetFieldParams(t)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		all = append(all, params...)
	}
	return all, nil
}

// fileSuffix marks a variable that names a file holding the value of the variable without it,
// as Docker and Kubernetes secrets are mounted: DATABASE_URL_FILE=/run/secrets/db.
const fileSuffix = "_FILE"

// LoadConfig reads the configuration from environ (os.Environ() form) and validates it. The
// error lists one line per problem, each naming the variable.
func LoadConfig(environ []string) (Config, error) {
	vars := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	cfg := newConfig()
	if err := resolveFiles(vars); err != nil {
		return cfg, err
	}
	for _, t := range cfg.targets() {
		if err := env.ParseWithOptions(t, env.Options{Environment: vars}); err != nil {
			return cfg, err
		}
	}
	return cfg, cfg.Validate()
}

// resolveFiles replaces, for every variable the configuration knows (the adapters' included),
// NAME_FILE by the contents of that file as NAME. Only known names are resolved, so an unrelated
// *_FILE variable in the environment is never read. A trailing newline, which editors and
// `echo` add, is dropped.
func resolveFiles(vars map[string]string) error {
	params, err := envParams()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range params {
		name, fileVar := p.Key, p.Key+fileSuffix
		path, ok := vars[fileVar]
		if !ok {
			continue
		}
		if v := vars[name]; v != "" {
			errs = append(errs, fmt.Errorf("%s: set either %s or %s, not both", fileVar, name, fileVar))
			continue
		}
		if path == "" {
			errs = append(errs, fmt.Errorf("%s: is empty; it must name a file holding %s", fileVar, name))
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			errs = append(errs, fmt.Errorf("%s: cannot read %s: %w", fileVar, path, err))
			continue
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			errs = append(errs, fmt.Errorf("%s: %s is empty", fileVar, path))
			continue
		}
		vars[name] = v
	}
	return errors.Join(errs...)
}

// Validate checks every setting and fills the derived ones. It reports all problems at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{name}, args...)...))
	}
	// First, so that no later message quotes a value with its credentials.
	errs = append(errs, c.refuseURLCredentials()...)
	if c.DatabaseURL == "" {
		bad("DATABASE_URL", "is required (e.g. postgres://bridge:secret@db:5432/bridge)")
	} else if u, err := url.Parse(string(c.DatabaseURL)); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		bad("DATABASE_URL", "must be a postgres:// URL")
	}
	if c.OneChatBaseURL == "" {
		bad("ONECHAT_BASE_URL", "is required (e.g. https://chat.example.com)")
	} else if !isHTTPURL(c.OneChatBaseURL) {
		bad("ONECHAT_BASE_URL", "must be an http:// or https:// URL, got %q", c.OneChatBaseURL)
	}
	if c.InboxIdentifier == "" {
		bad("ONECHAT_INBOX_IDENTIFIER", "is required: the identifier shown in the API inbox's settings")
	} else if strings.ContainsAny(string(c.InboxIdentifier), "/?# ") {
		bad("ONECHAT_INBOX_IDENTIFIER", "must be the bare inbox identifier, not a URL")
	}
	if c.CableURL == "" && isHTTPURL(c.OneChatBaseURL) {
		c.CableURL = defaultCableURL(c.OneChatBaseURL)
	} else if c.CableURL != "" {
		if u, err := url.Parse(c.CableURL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			bad("ONECHAT_CABLE_URL", "must be a ws:// or wss:// URL, got %q", c.CableURL)
		}
	}
	c.storageOrigins = nil
	for _, o := range strings.Split(c.StorageOrigins, ",") {
		if strings.TrimSpace(o) == "" {
			continue
		}
		norm, err := onechat.ParseOrigin(o)
		if err != nil {
			bad("ONECHAT_STORAGE_ORIGINS", "%q %v", o, err)
			continue
		}
		c.storageOrigins = append(c.storageOrigins, norm)
	}
	if n, err := parseSize(c.MaxAttachmentSize); err != nil || n < 1<<10 {
		bad("ONECHAT_MAX_ATTACHMENT_SIZE", "must be a size of at least 1KB such as 100MB or 2GB, got %q", c.MaxAttachmentSize)
	} else {
		c.maxAttachmentSize = n
	}
	switch {
	case c.AccessToken != "" && c.AccountID <= 0:
		bad("ONECHAT_ACCOUNT_ID", "is required with ONECHAT_API_ACCESS_TOKEN: the number after /app/accounts/ in OneChat's address bar")
	case c.AccessToken == "" && c.AccountID != 0:
		bad("ONECHAT_API_ACCESS_TOKEN", "is required with ONECHAT_ACCOUNT_ID: an agent's or agent bot's access token (Profile settings → Access token)")
	}
	if c.OnResolved != "new" && c.OnResolved != "reopen" {
		bad("ONECHAT_ON_RESOLVED", "must be new or reopen, got %q", c.OnResolved)
	}
	errs = append(errs, validateAdapters(c.adapters)...)
	errs = append(errs, c.Tuning.validate()...)
	errs = append(errs, c.Texts.validate()...)
	if c.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
			bad("BRIDGE_ADMIN_ADDR", "must be host:port (or empty to disable), got %q", c.AdminAddr)
		}
	}
	if d, err := time.ParseDuration(c.ShutdownTimeout); err != nil || d < time.Second || d > 10*time.Minute {
		bad("BRIDGE_SHUTDOWN_TIMEOUT", "must be a duration between 1s and 10m, got %q", c.ShutdownTimeout)
	} else {
		c.shutdownTimeout = d
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", "must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		bad("LOG_FORMAT", "must be json or console, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

// refuseURLCredentials refuses every setting whose value is a URL with credentials in it
// (user:password@host): such URLs end up in logs, errors and process listings. DATABASE_URL is
// exempt, as it carries the database password by design and is a Secret. The value of a refused
// setting loses its credentials here, so neither the error nor anything printed later shows
// them. Every field, the adapters' Configs included, is found by reflection, so a new setting is
// covered too; list settings (comma-separated) are checked item by item.
func (c *Config) refuseURLCredentials() []error {
	var errs []error
	for _, t := range c.targets() {
		errs = append(errs, refuseURLCredentialsIn(t)...)
	}
	return errs
}

// refuseURLCredentialsIn does refuseURLCredentials for one struct the environment was read into.
func refuseURLCredentialsIn(target any) []error {
	var errs []error
	walkConfig(reflect.ValueOf(target).Elem(), func(name string, v reflect.Value) {
		if name == "DATABASE_URL" || v.Kind() != reflect.String || !v.CanSet() {
			return
		}
		items := strings.Split(v.String(), ",")
		found := false
		for i, item := range items {
			u, err := url.Parse(strings.TrimSpace(item))
			if err != nil || u.User == nil || u.Host == "" {
				continue
			}
			found = true
			u.User = nil
			items[i] = u.String()
		}
		if found {
			errs = append(errs, fmt.Errorf("%s: must not contain credentials (user:password@): a URL ends up in logs; pass secrets through their own settings", name))
			v.SetString(strings.Join(items, ","))
		}
	})
	return errs
}

// parseSize reads a size in bytes: a whole number, optionally followed by KB, MB or GB (powers
// of 1024; the B may be left out).
func parseSize(s string) (int64, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// defaultCableURL turns the OneChat base URL into its ActionCable URL: ws(s)://host/cable.
func defaultCableURL(base string) string {
	u, _ := url.Parse(base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/cable"
	u.RawQuery, u.Fragment = "", ""
	return u.String()
}

// sensitiveName matches variables whose values are credentials even when a field forgot to use
// the Secret type, so the startup line cannot leak them.
func sensitiveName(name string) bool {
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "KEY", "IDENTIFIER", "DATABASE_URL"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// configObject is the effective configuration as a log object: every variable the Config
// struct and each adapter's Config read (found by reflection, so a new adapter is covered
// without touching this code), by its environment name, with secrets shown only as set or not.
type configObject struct{ cfg *Config }

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (o configObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	for _, t := range o.cfg.targets() {
		o.marshal(enc, t)
	}
	return nil
}

// marshal adds the variables of one struct the environment was read into.
func (configObject) marshal(enc zapcore.ObjectEncoder, target any) {
	walkConfig(reflect.ValueOf(target).Elem(), func(name string, v reflect.Value) {
		switch {
		case v.Type() == reflect.TypeFor[Secret]():
			enc.AddString(name, redactedValue(name, v.String()))
		case v.Kind() == reflect.String && sensitiveName(name):
			enc.AddString(name, redactedValue(name, v.String()))
		case v.Kind() == reflect.String:
			enc.AddString(name, v.String())
		default:
			enc.AddString(name, fmt.Sprint(v.Interface()))
		}
	})
}

// redactedValue shows whether a secret is set; for DATABASE_URL it keeps the parts an operator
// needs to see which database is meant (host, port, database), never the user info or query.
func redactedValue(name, v string) string {
	if v == "" {
		return ""
	}
	if name == "DATABASE_URL" {
		if u, err := url.Parse(v); err == nil && u.Host != "" {
			return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String() + " (credentials redacted)"
		}
	}
	return secret.Redacted
}

// walkConfig calls fn for every exported field with an env tag, descending into nested structs.
func walkConfig(v reflect.Value, fn func(name string, v reflect.Value)) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		switch {
		case name != "":
			fn(name, v.Field(i))
		case f.Type.Kind() == reflect.Struct:
			walkConfig(v.Field(i), fn)
		}
	}
}

// configField is the startup log's field for the effective configuration.
func configField(cfg *Config) zap.Field { return zap.Object("config", configObject{cfg}) }
