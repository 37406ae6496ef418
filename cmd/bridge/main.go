// Command bridge runs OneChat Bridge: it gives a OneChat API inbox support coverage on the
// chat platforms listed in adapterTable.
//
// Usage:
//
//	bridge [run]    run the bridge (applies migrations first)
//	bridge migrate  apply database migrations and exit
//	bridge check    check the configuration and reach every dependency
//	bridge health   ask the running bridge's admin listener whether it is alive
//	bridge version  print the version
//
// Configuration comes from the environment; see README.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

// realMain runs one subcommand and returns the process exit code.
func realMain(args, environ []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "onechat-bridge %s\n", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "health":
		return health(args[1:], environ, stdout, stderr)
	case "run", "migrate", "check":
	default:
		fmt.Fprintf(stderr, "bridge: unknown command %q\n\n%s", cmd, usage)
		return 2
	}

	cfg, err := LoadConfig(environ)
	if err != nil && cmd == "check" {
		for _, line := range splitErrors(err) {
			fmt.Fprintf(stdout, "FAIL  %-10s %s\n", "config", line)
		}
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "bridge: configuration is invalid:\n")
		for _, line := range splitErrors(err) {
			fmt.Fprintf(stderr, "  %s\n", line)
		}
		return 2
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "bridge: %v\n", err)
		return 2
	}
	defer func() { _ = logger.Sync() }()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "check":
		if !check(ctx, cfg, logger, stdout) {
			return 1
		}
		return 0
	case "migrate":
		err = migrate(ctx, cfg, logger)
	default:
		err = run(ctx, cfg, logger)
	}
	if err != nil {
		logger.Error("bridge stopped with an error", zap.Error(err))
		return 1
	}
	return 0
}

const usage = `Usage: bridge [command]

Commands:
  run       run the bridge (default); applies database migrations first
  migrate   apply database migrations and exit
  check     check the configuration and reach Postgres, OneChat (inbox and cable) and each
            platform; one OK or FAIL line per check, exit status 1 on any failure
  health    [--ready] ask the running bridge's admin listener (BRIDGE_ADMIN_ADDR) for /livez
            (or /readyz); exit status 1 unless it answers 200. For container health checks.
  version   print the version and exit

Configuration is read from the environment; see README.md.
`

func splitErrors(err error) []string {
	var lines []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			lines = append(lines, splitErrors(e)...)
		}
		return lines
	}
	return []string{err.Error()}
}

// newLogger builds the process logger: JSON for production, console for development.
func newLogger(cfg Config, w io.Writer) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	var enc zapcore.Encoder
	if cfg.LogFormat == "console" {
		ec := zap.NewDevelopmentEncoderConfig()
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.AddCaller()), nil
}
