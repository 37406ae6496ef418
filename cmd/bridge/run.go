package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres"
	"github.com/onechat/onechat-bridge/onechat"
)

// migrate applies the database migrations.
func migrate(ctx context.Context, cfg Config, logger *zap.Logger) error {
	store, err := postgres.Open(ctx, string(cfg.DatabaseURL), logger.Named("postgres"))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	logger.Info("database is up to date")
	return nil
}

// newOneChat builds the OneChat Client API client of the configured inbox.
func newOneChat(cfg Config, logger *zap.Logger) *onechat.Client {
	return onechat.NewClient(cfg.OneChatBaseURL, string(cfg.InboxIdentifier), &onechat.Options{
		HMACToken:         string(cfg.HMACToken),
		Logger:            logger.Named("onechat"),
		RequestsPerSecond: cfg.Tuning.parsed.requestsPerSec,
		RequestBurst:      cfg.Tuning.parsed.requestBurst,
		StorageOrigins:    cfg.storageOrigins,
		MaxDownloadBytes:  cfg.maxAttachmentSize,
	})
}

// newApplication builds the Application API client when ONECHAT_API_ACCESS_TOKEN is set, nil
// otherwise.
func newApplication(cfg Config, oc *onechat.Client) *onechat.AppClient {
	if cfg.AccessToken == "" {
		return nil
	}
	return oc.Application(cfg.AccountID, string(cfg.AccessToken))
}

// coreShutdownGrace is the part of the shutdown deadline the core may spend finishing
// in-flight messages; the rest is left for handing them back to the queue and closing.
func coreShutdownGrace(deadline time.Duration) time.Duration { return deadline * 2 / 3 }

// run wires the bridge together and runs it until ctx is cancelled: store → OneChat →
// adapters → core, plus the admin listener. After ctx is cancelled it returns within
// cfg's shutdown timeout: in-flight messages get two thirds of it to finish and are otherwise
// handed back to the queue, so nothing queued is lost.
func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	logger.Info("starting onechat-bridge", zap.String("version", version),
		zap.Strings("platforms", enabledPlatforms(cfg.adapters)), configField(&cfg))
	for _, p := range cfg.Texts.missing {
		logger.Warn("a text is missing from BRIDGE_MESSAGES_FILE; the default language's is used",
			zap.String("language", p.Language), zap.String("key", p.Key))
	}

	store, err := postgres.Open(ctx, string(cfg.DatabaseURL), logger.Named("postgres"))
	if err != nil {
		return err
	}
	// closeStore is skipped when the shutdown deadline passed: Close waits for connections
	// still in use, and the process is about to exit anyway.
	closeStore := true
	defer func() {
		if closeStore {
			store.Close()
		}
	}()
	if err := store.Migrate(ctx); err != nil {
		return err
	}

	oc := newOneChat(cfg, logger)
	adapters, err := buildAdapters(cfg, logger)
	if err != nil {
		return err
	}
	reg := newRegistry()
	opts := bridge.Options{
		Store:         store,
		OneChat:       oc,
		Application:   newApplication(cfg, oc),
		Adapters:      adapters,
		CableURL:      cfg.CableURL,
		Logger:        logger.Named("core"),
		Metrics:       bridge.NewMetrics(reg),
		OnResolved:    bridge.ResolvedPolicy(cfg.OnResolved),
		ShutdownGrace: coreShutdownGrace(cfg.shutdownTimeout),
		Texts:         cfg.Texts.Catalogue(),
	}
	cfg.Tuning.apply(&opts)
	core, err := bridge.New(opts)
	if err != nil {
		return err
	}
	reg.MustRegister(newStatsCollector(store, core.Cable(), logger.Named("metrics")), core.RolesCollector())

	g, gctx := errgroup.WithContext(ctx)
	if cfg.AdminAddr != "" {
		ln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			return fmt.Errorf("BRIDGE_ADMIN_ADDR: %w", err)
		}
		srv := adminServer(adminHandler(readinessChecks(store, oc, core, core.Adapters()), reg, core.Roles, cfg.Pprof), logger)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin listener: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(gctx), 2*time.Second)
			defer cancel()
			return srv.Shutdown(shutdown)
		})
		logger.Info("admin listener up", zap.String("addr", ln.Addr().String()))
	}
	g.Go(func() error { return core.Run(gctx) })

	err = awaitShutdown(ctx, cfg.shutdownTimeout, g.Wait)
	if errors.Is(err, errShutdownDeadline) {
		closeStore = false
		logger.Error("bridge did not stop in time; exiting anyway (unfinished messages stay queued and are retried after their lease expires)",
			zap.Duration("shutdown_timeout", cfg.shutdownTimeout))
		return err
	}
	logger.Info("bridge stopped")
	return err
}

// errShutdownDeadline says the bridge did not stop within BRIDGE_SHUTDOWN_TIMEOUT.
var errShutdownDeadline = errors.New("shutdown deadline exceeded (BRIDGE_SHUTDOWN_TIMEOUT)")

// awaitShutdown runs wait and returns its result, but once ctx is cancelled it waits at most
// timeout for it, then returns errShutdownDeadline and leaves wait running: the caller is about
// to exit, and a container runtime would kill it a little later anyway.
func awaitShutdown(ctx context.Context, timeout time.Duration, wait func() error) error {
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errShutdownDeadline
	}
}

// newRegistry is the private registry /metrics serves: the bridge's series plus the Go runtime
// and process collectors, and nothing any library registered globally.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectorsGo(),
		collectorsProcess(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "bridge_build_info",
			Help:        "Always 1; the version label says which build runs.",
			ConstLabels: prometheus.Labels{"version": version},
		}, func() float64 { return 1 }),
	)
	return reg
}
