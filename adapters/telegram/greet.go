package telegram

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/texts"
)

// DefaultGreetingInterval is how long a chat that was greeted is not greeted again, however
// often its user sends /start.
const DefaultGreetingInterval = 24 * time.Hour

// followUpQueueSize bounds the follow-ups (greetings, button answers) waiting for the sender.
// Beyond it they are dropped: a greeting is a courtesy and a button's spinner stops by itself,
// while the updates that asked for them are already stored.
const followUpQueueSize = 256

// greetedKey is the host value that remembers when a chat was last greeted ("<unix seconds>.<a
// unique part>"), so the interval holds across restarts and instances.
func greetedKey(chatID int64) string { return "greeted." + strconv.FormatInt(chatID, 10) }

// followUpSender performs follow-ups off the intake path. The poll loop and webhook requests
// only offer them, which never blocks: a flood of /start from one user would otherwise hold
// intake for every user while each greeting waits for the chat's pacer slot. Run owns the
// goroutine that sends them (run) and waits for it.
type followUpSender struct {
	queue chan followUp

	mu sync.Mutex
	// greeting holds the chats with a greeting queued: further /start from them add nothing.
	greeting map[int64]struct{}
	// dropped counts follow-ups refused because the queue was full.
	dropped atomic.Int64
}

func newFollowUpSender(size int) *followUpSender {
	return &followUpSender{queue: make(chan followUp, size), greeting: map[int64]struct{}{}}
}

// offer queues f for the sender without waiting. A greeting for a chat that has one queued
// already is merged into it; a follow-up that does not fit is dropped and counted.
func (s *followUpSender) offer(log *zap.Logger, f followUp) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.greetChat != 0 {
		if _, queued := s.greeting[f.greetChat]; queued {
			return
		}
	}
	select {
	case s.queue <- f:
		if f.greetChat != 0 {
			s.greeting[f.greetChat] = struct{}{}
		}
	default:
		n := s.dropped.Add(1)
		log.Debug("dropped a telegram follow-up: too many are waiting",
			zap.Int64("chat_id", f.greetChat), zap.Bool("callback", f.callback != nil),
			zap.Int64("dropped_total", n))
	}
}

// take removes f from the set of queued greetings before it is performed, so a /start that
// arrives meanwhile is queued again (and then finds the chat greeted).
func (s *followUpSender) take(f followUp) {
	if f.greetChat == 0 {
		return
	}
	s.mu.Lock()
	delete(s.greeting, f.greetChat)
	s.mu.Unlock()
}

// runFollowUps performs queued follow-ups one at a time until ctx is done.
func (a *Adapter) runFollowUps(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-a.followUps.queue:
			a.followUps.take(f)
			a.performFollowUp(ctx, f)
		}
	}
}

// withFollowUps runs receive (the poller or the webhook server) together with the follow-up
// sender, and returns once both have stopped.
func (a *Adapter) withFollowUps(ctx context.Context, receive func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.runFollowUps(ctx)
	}()
	defer wg.Wait()
	defer cancel()
	return receive(ctx)
}

// offerFollowUps queues what a stored batch asks for.
func (a *Adapter) offerFollowUps(fs []followUp) {
	for _, f := range fs {
		if f.greetChat != 0 && a.greetingOff {
			continue
		}
		a.followUps.offer(a.log, f)
	}
}

// performFollowUp greets or answers a button press. Failures are logged: the updates are stored
// and the user can press again or write.
func (a *Adapter) performFollowUp(ctx context.Context, f followUp) {
	switch {
	case f.greetChat != 0:
		a.greet(ctx, f.greetChat, f.greetLang)
	case f.callback != nil:
		a.answerCallback(ctx, f.callback, f.choice)
	}
}

// greet sends the greeting to a chat unless it was greeted within the greeting interval. The
// time is stored before sending, so two instances or a quick second /start do not both greet;
// a failed send forgets it again, so the next /start tries once more. The greeting is in lang,
// the language of the user's Telegram app, unless the operator set one for everyone.
func (a *Adapter) greet(ctx context.Context, chatID int64, lang string) {
	log := a.log.With(zap.Int64("chat_id", chatID))
	key := greetedKey(chatID)
	now := a.now()
	v, ok, err := a.host.Value(ctx, key)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("reading when the telegram chat was greeted failed; not greeting", zap.Error(err))
		}
		return
	}
	if ok {
		at, _, _ := strings.Cut(v, ".")
		if t, perr := strconv.ParseInt(at, 10, 64); perr == nil && now.Sub(time.Unix(t, 0)) < a.greetingInterval {
			log.Debug("telegram chat was greeted recently; not greeting again")
			return
		}
	}
	// The value is the time plus a part unique to this call: for a chat never greeted, only the
	// instance whose value was stored greets, even when two take a /start each at once.
	mine := strconv.FormatInt(now.Unix(), 10) + "." + strconv.FormatUint(rand.Uint64(), 36)
	if !ok {
		stored, err := a.host.SetValueIfAbsent(ctx, key, mine)
		if err != nil || stored != mine {
			if err != nil && ctx.Err() == nil {
				log.Warn("remembering the telegram greeting failed; not greeting", zap.Error(err))
			}
			return
		}
	} else if err := a.host.SetValue(ctx, key, mine); err != nil {
		if ctx.Err() == nil {
			log.Warn("remembering the telegram greeting failed; not greeting", zap.Error(err))
		}
		return
	}
	text := a.greeting
	if text == "" {
		text = a.host.Texts().Text(lang, texts.Greeting, nil)
	}
	msg := bridge.Outbound{Chat: bridge.ChatRef{Platform: Platform, ID: strconv.FormatInt(chatID, 10)}, Text: text}
	if _, err := a.Send(ctx, msg); err != nil {
		if ctx.Err() != nil {
			return
		}
		log.Warn("sending the telegram greeting failed", zap.Error(err))
		if err := a.host.DeleteValue(ctx, key); err != nil && ctx.Err() == nil {
			log.Warn("forgetting the failed telegram greeting failed", zap.Error(err))
		}
	}
}
