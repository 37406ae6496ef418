package discord

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/adapters/discord/discordtest"
)

func TestCatchUpFindsEditsAndDeletesMadeWhileDown(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "")
	in := newInbox()
	h := start(t, srv, newAdapter(t, srv, "dm"), in)
	one := srv.UserSendsDM(alice, "one")
	two := srv.UserSendsDM(alice, "two")
	srv.UserSendsDM(alice, "three")
	waitMsgs(t, in, 3)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	// While the bridge is down: no gateway hears these.
	srv.UserEdits(one.ID, "one, edited")
	srv.UserDeletes(two.ID)
	srv.UserSendsDM(alice, "missed", discordtest.Offline())

	h = start(t, srv, newAdapter(t, srv, "dm"), in)
	srv.UserSendsDM(alice, "live")
	got := waitMsgs(t, in, 7)
	var seen []string
	for _, m := range got[3:] {
		switch {
		case m.EditOf != "":
			seen = append(seen, "edit "+m.EditOf+" "+m.Text)
		case m.DeletedOf != "":
			seen = append(seen, "delete "+m.DeletedOf)
		default:
			seen = append(seen, m.Text)
		}
	}
	want := []string{"edit " + one.ID + " one, edited", "delete " + two.ID, "missed", "live"}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("after the restart delivered %q, want %q", seen, want)
	}
	if got[3].User.ID != alice || got[4].Chat.ID != one.ChannelID || got[4].MessageID != two.ID+".delete" {
		t.Errorf("edit %+v, delete %+v", got[3], got[4])
	}

	// Another restart finds nothing new, and a replay of what it found would be a no-op.
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	editKey, deleteKey := got[3].DedupKey(), got[4].DedupKey()
	start(t, srv, newAdapter(t, srv, "dm"), in)
	srv.UserSendsDM(alice, "again")
	got = waitMsgs(t, in, 8)
	if len(got) != 8 || got[7].Text != "again" || in.Deliveries(editKey) != 1 || in.Deliveries(deleteKey) != 1 {
		t.Errorf("after a second restart: %d messages (last %q); the edit delivered %d times, the delete %d, want once each",
			len(got), got[len(got)-1].Text, in.Deliveries(editKey), in.Deliveries(deleteKey))
	}
}

func TestLiveEditAfterCatchUpIsNotRepeated(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	srv.AddUser(alice, "alice", "")
	in := newInbox()
	h := start(t, srv, newAdapter(t, srv, "dm"), in)
	one := srv.UserSendsDM(alice, "one")
	waitMsgs(t, in, 1)
	srv.UserEdits(one.ID, "one!") // live: delivered once by the gateway
	waitMsgs(t, in, 2)
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	start(t, srv, newAdapter(t, srv, "dm"), in)
	srv.UserSendsDM(alice, "next")
	got := waitMsgs(t, in, 3)
	if len(got) != 3 || got[2].Text != "next" || in.Deliveries(got[1].DedupKey()) != 1 {
		t.Errorf("delivered %d (last %q), the live edit %d times; it must not come again", len(got), got[len(got)-1].Text, in.Deliveries(got[1].DedupKey()))
	}
}

func TestRecentRecordIsBounded(t *testing.T) {
	srv := discordtest.NewServer(t, testToken)
	a := newAdapter(t, srv, "dm")
	in := newInbox()
	ctx := context.Background()
	base := (time.Now().UnixMilli() - discordEpoch) << 22
	id := func(i int) string { return strconv.FormatInt(base+int64(i)<<22, 10) }
	for i := range recentLimit + 10 {
		a.remember(ctx, in, "1", func(r recentRecord) { r[id(i)] = 0 })
	}
	rec := a.recentOf(ctx, in, "1")
	if _, kept := rec[id(9)]; len(rec) != recentLimit || kept {
		t.Errorf("record of %d messages keeps %d (the oldest too: %v), want the newest %d", recentLimit+10, len(rec), kept, recentLimit)
	}

	// Only chats active within recentMaxAge are re-read, newest first, at most recentMaxChats.
	old := strconv.FormatInt((time.Now().Add(-recentMaxAge-time.Hour).UnixMilli()-discordEpoch)<<22, 10)
	_ = in.SetValue(ctx, recentPrefix+"2", `{"`+old+`":0}`)
	for i := range recentMaxChats + 5 {
		_ = in.SetValue(ctx, recentPrefix+strconv.Itoa(100+i), `{"`+id(i)+`":0}`)
	}
	chats := a.recentChats(ctx, in)
	if len(chats) != recentMaxChats || chats["2"] || chats["100"] || !chats[strconv.Itoa(100+recentMaxChats+4)] {
		t.Errorf("re-read %d chats (stale one: %v, oldest active: %v), want the %d most recent", len(chats), chats["2"], chats["100"], recentMaxChats)
	}
}
