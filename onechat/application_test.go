package onechat

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

func TestApplicationAgainstFake(t *testing.T) {
	e := newFakeEnv(t, nil, nil)
	e.secrets = append(e.secrets, e.fake.AccessToken())
	ctx := context.Background()
	ct, cv := e.session("telegram:1")
	app := e.c.Application(e.fake.AccountID(), e.fake.AccessToken())

	t.Run("private note reaches agents only", func(t *testing.T) {
		m, err := app.CreatePrivateNote(ctx, cv.ID, "📎 backup.zip was left out")
		if err != nil {
			t.Fatal(err)
		}
		notes := e.fake.PrivateNotes(cv.ID)
		if len(notes) != 1 || notes[0].ID != m.ID || notes[0].Content != "📎 backup.zip was left out" || notes[0].MessageType != onechattest.MessageOutgoing {
			t.Fatalf("private notes %+v, created %+v", notes, m)
		}
		// The contact never sees it: the Client API's list leaves private notes out.
		msgs, err := e.c.ListMessages(ctx, ct.SourceID, cv.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			if msg.ID == m.ID {
				t.Errorf("the contact's message list has the private note %+v", msg)
			}
		}
	})

	t.Run("labels are read and replaced", func(t *testing.T) {
		e.fake.SetLabels(cv.ID, "vip")
		got, err := app.ConversationLabels(ctx, cv.ID)
		if err != nil || !slices.Equal(got, []string{"vip"}) {
			t.Fatalf("labels %v, %v", got, err)
		}
		got, err = app.SetConversationLabels(ctx, cv.ID, append(got, "telegram"))
		if err != nil || !slices.Equal(got, []string{"telegram", "vip"}) || !slices.Equal(e.fake.Labels(cv.ID), got) {
			t.Fatalf("set labels %v, %v; fake has %v", got, err, e.fake.Labels(cv.ID))
		}
		titles, err := app.AccountLabels(ctx)
		if err != nil || !slices.Equal(titles, []string{"telegram", "vip"}) {
			t.Fatalf("account labels %v, %v", titles, err)
		}
	})

	t.Run("custom attributes are read and replaced", func(t *testing.T) {
		e.fake.SetConversationAttributes(cv.ID, map[string]any{"priority": "high"})
		d, err := app.Conversation(ctx, cv.ID)
		if err != nil || d.ID != cv.ID || d.CustomAttributes["priority"] != "high" || !slices.Equal(d.Labels, []string{"telegram", "vip"}) {
			t.Fatalf("conversation %+v, %v", d, err)
		}
		attrs := map[string]any{"priority": "high", "platform": "telegram"}
		if err := app.SetConversationAttributes(ctx, cv.ID, attrs); err != nil {
			t.Fatal(err)
		}
		got, _ := e.fake.Conversation(cv.ID)
		if len(got.CustomAttributes) != 2 || got.CustomAttributes["platform"] != "telegram" {
			t.Fatalf("attributes %v", got.CustomAttributes)
		}
	})

	t.Run("errors", func(t *testing.T) {
		bad := e.c.Application(e.fake.AccountID(), "wrong-token")
		_, err := bad.CreatePrivateNote(ctx, cv.ID, "x")
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized || !errors.Is(err, ErrAccessToken) || !IsConfigError(err) {
			t.Errorf("bad token: %v", err)
		}
		e.noLeak(err)
		_, err = app.CreatePrivateNote(ctx, cv.ID+100, "x")
		if !IsNotFound(err) || !IsPermanent(err) {
			t.Errorf("unknown conversation: %v", err)
		}
		_, err = e.c.Application(e.fake.AccountID()+1, e.fake.AccessToken()).ConversationLabels(ctx, cv.ID)
		if !IsNotFound(err) {
			t.Errorf("unknown account: %v", err)
		}
		_, err = app.CreatePrivateNote(ctx, cv.ID, "  ")
		if !IsValidation(err) || !errors.As(err, &ae) || ae.Message != "Content can't be blank" {
			t.Errorf("blank note: %v", err)
		}
		e.fake.FailNext(1, http.StatusBadGateway)
		if _, err = app.ConversationLabels(ctx, cv.ID); !IsRetryable(err) {
			t.Errorf("502: %v", err)
		}
		e.noLeak(err)
	})
	for _, r := range e.fake.Requests() {
		if r.Query != "" {
			t.Errorf("request %s %s?%s: the token belongs in a header", r.Method, r.Path, r.Query)
		}
	}
}
