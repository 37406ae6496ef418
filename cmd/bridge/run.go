package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

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

// run wires the bridge together and runs it until ctx is cancelled: store → OneChat →
// adapters → core, plus the admin listener.
func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	fields := []zap.Field{
		zap.String("version", version),
		zap.String("onechat_base_url", cfg.OneChatBaseURL),
		zap.String("onechat_cable_url", cfg.CableURL),
		zap.Bool("hmac", cfg.HMACToken != ""),
		zap.String("on_resolved", cfg.OnResolved),
		zap.String("admin_addr", cfg.AdminAddr),
	}
	fields = append(fields, cfg.Telegram.logFields()...)
	logger.Info("starting onechat-bridge", fields...)

	store, err := postgres.Open(ctx, string(cfg.DatabaseURL), logger.Named("postgres"))
	if err != nil {
		return err
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		return err
	}

	oc := onechat.NewClient(cfg.OneChatBaseURL, string(cfg.InboxIdentifier), &onechat.Options{
		HMACToken: string(cfg.HMACToken),
		Logger:    logger.Named("onechat"),
	})
	var adapters []bridge.Adapter
	if cfg.Telegram.enabled() {
		tg, err := cfg.Telegram.adapter(logger)
		if err != nil {
			return err
		}
		adapters = append(adapters, tg)
	}
	core, err := bridge.New(bridge.Options{
		Store:      store,
		OneChat:    oc,
		Adapters:   adapters,
		CableURL:   cfg.CableURL,
		Logger:     logger.Named("core"),
		OnResolved: bridge.ResolvedPolicy(cfg.OnResolved),
	})
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	if cfg.AdminAddr != "" {
		ln, err := net.Listen("tcp", cfg.AdminAddr)
		if err != nil {
			return fmt.Errorf("BRIDGE_ADMIN_ADDR: %w", err)
		}
		srv := &http.Server{Handler: adminHandler(store, core), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin listener: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(gctx), 5*time.Second)
			defer cancel()
			return srv.Shutdown(shutdown)
		})
		logger.Info("admin listener up", zap.String("addr", ln.Addr().String()))
	}
	g.Go(func() error { return core.Run(gctx) })
	err = g.Wait()
	logger.Info("bridge stopped")
	return err
}

// adminHandler serves /livez (the process answers) and /readyz (Postgres and the OneChat
// cable are up), for container health checks.
func adminHandler(store *postgres.Store, core *bridge.Core) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		down := map[string]string{}
		if err := store.Ping(ctx); err != nil {
			down["postgres"] = "unreachable"
		}
		if !core.Cable().Connected() {
			down["cable"] = "not connected"
		}
		w.Header().Set("Content-Type", "application/json")
		if len(down) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "unavailable", "down": down})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok"})
	})
	return mux
}
