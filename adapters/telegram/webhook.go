package telegram

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-telegram/bot/models"
	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/adapters/retry"
	"github.com/onechat/onechat-bridge/bridge"
)

// secretHeader carries the webhook secret in every update Telegram posts.
const secretHeader = "X-Telegram-Bot-Api-Secret-Token"

// webhookMaxConnections lets Telegram post the parts of an album at the same time, which the
// handler holds until the album is complete (Telegram's default is 40).
const webhookMaxConnections = 40

// webhookMaxHeaderBytes bounds the request headers the webhook server reads; Telegram's are a
// few hundred bytes.
const webhookMaxHeaderBytes = 16 << 10

// refusalLogInterval is the least time between two log lines about refused webhook requests:
// someone probing the public URL must not be able to flood the log.
const refusalLogInterval = 10 * time.Second

// runWebhook serves Telegram's webhook on the configured address until ctx is cancelled. The
// server is listening before setWebhook tells Telegram about it; an update is answered 200
// only after the core stored it, otherwise 500, and Telegram delivers it again later.
func (a *Adapter) runWebhook(ctx context.Context, in bridge.Host) error {
	ln, err := net.Listen("tcp", a.webhookListen)
	if err != nil {
		return fmt.Errorf("telegram: webhook listen on %s: %w", a.webhookListen, err)
	}
	return a.serveWebhook(ctx, in, ln)
}

// serveWebhook is runWebhook on a given listener, which it closes.
func (a *Adapter) serveWebhook(ctx context.Context, in bridge.Host, ln net.Listener) error {
	path := "/"
	if u, err := url.Parse(a.webhookURL); err == nil && u.Path != "" {
		path = u.Path
	}
	h := &webhookHandler{a: a, in: in, ctx: ctx, path: path, albums: map[string]*album{}, loggedChats: map[int64]struct{}{}}
	srv := &http.Server{
		Handler: h,
		// The webhook is public: a client that trickles its headers or body, or keeps idle
		// connections open, is cut off instead of holding a connection for ever.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A request waits for the rest of its album and for the store.
		WriteTimeout:   a.albumWindow + callTimeout + 10*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: webhookMaxHeaderBytes,
		ErrorLog:       zap.NewStdLog(a.log.Named("webhook_server")),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	a.log.Info("telegram webhook server listening", zap.String("addr", ln.Addr().String()), zap.String("path", path))

	result := a.registerWebhook(ctx)
	if result == nil {
		select {
		case <-ctx.Done():
		case err := <-serveErr:
			serveErr <- err
			if !errors.Is(err, http.ErrServerClosed) {
				result = fmt.Errorf("telegram: webhook server: %w", err)
			}
		}
	}
	// Wait for handlers in flight: an update being stored should get its answer.
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	<-serveErr
	return result
}

// registerWebhook calls setWebhook until it succeeds or ctx ends. A rejected token or URL is
// returned: no retry can fix it.
func (a *Adapter) registerWebhook(ctx context.Context) error {
	p := map[string]any{
		"url":             a.webhookURL,
		"secret_token":    a.webhookSecret,
		"allowed_updates": allowedUpdates,
		"max_connections": webhookMaxConnections,
	}
	for attempt := 0; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, callTimeout)
		err := a.call(callCtx, "setWebhook", p, nil)
		cancel()
		if err == nil {
			a.health.set(nil)
			a.log.Info("telegram webhook registered")
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		a.health.set(fmt.Errorf("telegram: setWebhook failing: %w", err))
		var apiErr *APIError
		if errors.As(err, &apiErr) {
			switch apiErr.Code {
			case http.StatusUnauthorized:
				return fmt.Errorf("telegram: TELEGRAM_BOT_TOKEN rejected: %w", err)
			case http.StatusBadRequest:
				// e.g. "bad webhook: HTTPS url must be provided for webhook"
				return fmt.Errorf("telegram: TELEGRAM_WEBHOOK_URL rejected: %w", err)
			}
		}
		d := a.backoff.Delay(attempt)
		if errors.As(err, &apiErr) && apiErr.RetryAfter > 0 {
			d = apiErr.RetryAfter
		}
		a.log.Warn("telegram setWebhook failed, retrying", zap.Error(err),
			zap.Int("attempt", attempt+1), zap.Duration("sleep", d))
		if a.wait(ctx, d) != nil {
			return nil
		}
	}
}

// webhookHandler receives updates. Each request stores its update before answering; the parts
// of an album wait for each other and are stored as one message.
type webhookHandler struct {
	a    *Adapter
	in   bridge.Host
	ctx  context.Context // Run's: stores go on while a request is answered
	path string

	mu          sync.Mutex
	albums      map[string]*album
	loggedChats map[int64]struct{}
	// refused counts requests refused for a wrong secret since the last log line about them,
	// which was at refusalLogged.
	refused       int
	refusalLogged time.Time
}

// logRefusal logs a request refused for its secret, at most once per refusalLogInterval, with
// the number refused since the last line.
func (h *webhookHandler) logRefusal(r *http.Request) {
	h.mu.Lock()
	h.refused++
	now := h.a.now()
	if !h.refusalLogged.IsZero() && now.Sub(h.refusalLogged) < refusalLogInterval {
		h.mu.Unlock()
		return
	}
	n := h.refused
	h.refused, h.refusalLogged = 0, now
	h.mu.Unlock()
	h.a.log.Warn("refused telegram webhook requests without the right secret",
		zap.Int("refused", n), zap.Duration("interval", refusalLogInterval),
		zap.String("last_remote_addr", r.RemoteAddr))
}

// album collects the parts of a media group arriving as separate requests.
type album struct {
	parts []decoded
	last  time.Time
	done  chan struct{}
	err   error
}

func (h *webhookHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != h.path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	got := r.Header.Get(secretHeader)
	if subtle.ConstantTimeCompare([]byte(got), []byte(h.a.webhookSecret)) != 1 {
		h.logRefusal(r)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxResponseBytes))
	if err != nil {
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	var head struct {
		ID *int64 `json:"update_id"`
	}
	var u models.Update
	if json.Unmarshal(body, &head) != nil || head.ID == nil {
		// Not an update at all: Telegram would only send the same again.
		h.a.log.Warn("ignoring a telegram webhook request that is not an update")
		w.WriteHeader(http.StatusOK)
		return
	}
	d := decoded{id: *head.ID}
	if err := json.Unmarshal(body, &u); err != nil {
		h.a.log.Warn("skipping telegram update that cannot be decoded", zap.Int64("update_id", d.id), zap.Error(err))
		w.WriteHeader(http.StatusOK)
		return
	}
	d.update = &u
	if g := albumOf(&u); g != "" {
		err = h.joinAlbum(g, d)
	} else {
		err = h.store([]decoded{d})
	}
	if err != nil {
		h.a.log.Warn("storing a telegram update failed; telegram will deliver it again",
			zap.Int64("update_id", d.id), zap.Error(err))
		http.Error(w, "not stored", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// store converts and delivers updates, then performs their follow-ups.
func (h *webhookHandler) store(batch []decoded) error {
	h.mu.Lock()
	msgs, follow := h.a.convertBatch(batch, h.loggedChats)
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(h.ctx, callTimeout)
	defer cancel()
	if len(msgs) > 0 {
		if err := h.in.Deliver(ctx, bridge.Cursor{}, msgs...); err != nil {
			return err
		}
	}
	h.a.offerFollowUps(follow)
	return nil
}

// joinAlbum adds a part to its album and waits until the album is stored. The first part's
// request stores it once no part arrived for the album window; every part's request answers
// with the outcome, so on failure Telegram redelivers them all (and the store deduplicates).
func (h *webhookHandler) joinAlbum(group string, d decoded) error {
	h.mu.Lock()
	al, ok := h.albums[group]
	if !ok {
		al = &album{done: make(chan struct{})}
		h.albums[group] = al
	}
	al.parts = append(al.parts, d)
	al.last = time.Now()
	h.mu.Unlock()
	if ok {
		select {
		case <-al.done:
			return al.err
		case <-h.ctx.Done():
			return h.ctx.Err()
		}
	}
	for {
		h.mu.Lock()
		wait := time.Until(al.last.Add(h.a.albumWindow))
		if wait <= 0 {
			delete(h.albums, group)
		}
		h.mu.Unlock()
		if wait <= 0 {
			break
		}
		if err := retry.Sleep(h.ctx, wait); err != nil {
			h.mu.Lock()
			delete(h.albums, group)
			h.mu.Unlock()
			al.err = err
			close(al.done)
			return err
		}
	}
	// Telegram may post the parts out of order; the album is ordered by update id.
	parts := al.parts
	for i := 1; i < len(parts); i++ {
		for j := i; j > 0 && parts[j].id < parts[j-1].id; j-- {
			parts[j], parts[j-1] = parts[j-1], parts[j]
		}
	}
	al.err = h.store(parts)
	close(al.done)
	return al.err
}
