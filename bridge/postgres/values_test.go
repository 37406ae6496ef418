package postgres_test

import (
	"maps"
	"sync"
	"testing"

	"github.com/onechat/onechat-bridge/bridge"
	"github.com/onechat/onechat-bridge/bridge/postgres/pgtest"
)

func TestStringCursorsNeverMoveBack(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	ctx := t.Context()
	const name = "slack.channel.C1"
	for _, pos := range []string{"1712345678.000200", "1712345678.000100", "999999999.999999", "1712345679.000001"} {
		if _, err := s.Enqueue(ctx, bridge.Cursor{Name: name, Position: pos}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Cursor(ctx, name); err != nil || got != "1712345679.000001" {
		t.Fatalf("cursor = %q, %v; want the latest timestamp", got, err)
	}
	// Integer positions order numerically, not as text ("10" after "9").
	for _, pos := range []string{"9", "10", "8"} {
		if _, err := s.Enqueue(ctx, bridge.Cursor{Name: "n", Position: pos}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := s.Cursor(ctx, "n"); got != "10" {
		t.Fatalf("integer cursor = %q, want 10", got)
	}
}

func TestAdapterValuesArePerPlatform(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	ctx := t.Context()
	const slack, discord = bridge.Platform("slack"), bridge.Platform("discord")
	if _, ok, err := s.Value(ctx, slack, "ticket.U1"); err != nil || ok {
		t.Fatalf("Value of a fresh key = %v, %v; want none", ok, err)
	}
	if err := s.SetValue(ctx, slack, "ticket.U1", "1712.1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetValue(ctx, slack, "ticket.U1", "1712.2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetValue(ctx, discord, "ticket.U1", "99"); err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := s.Value(ctx, slack, "ticket.U1"); !ok || v != "1712.2" {
		t.Fatalf("slack value = %q, %v; want the last one set", v, ok)
	}
	if err := s.SetValue(ctx, slack, "other", "x"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Values(ctx, slack, "ticket.")
	if err != nil || !maps.Equal(got, map[string]string{"ticket.U1": "1712.2"}) {
		t.Fatalf("Values = %v, %v; want only slack's ticket keys", got, err)
	}
	if err := s.DeleteValue(ctx, slack, "ticket.U1"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Value(ctx, slack, "ticket.U1"); ok {
		t.Fatal("a deleted value is still there")
	}
	if v, ok, _ := s.Value(ctx, discord, "ticket.U1"); !ok || v != "99" {
		t.Fatalf("deleting slack's key touched discord's: %q, %v", v, ok)
	}
}

func TestSetValueIfAbsentHasOneWinner(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	ctx := t.Context()
	const p = bridge.Platform("discord")
	var wg sync.WaitGroup
	got := make([]string, 8)
	errs := make([]error, 8)
	for i := range got {
		wg.Go(func() {
			got[i], errs[i] = s.SetValueIfAbsent(ctx, p, "thread.42", string(rune('a'+i)))
		})
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if got[i] != got[0] {
			t.Fatalf("racing callers got %q and %q: want one winner for all", got[0], got[i])
		}
	}
	if v, _, _ := s.Value(ctx, p, "thread.42"); v != got[0] {
		t.Fatalf("stored %q, callers were told %q", v, got[0])
	}
}

// TestSetValuesStoresManyAtOnce: values of several platforms in one call, a key given twice
// keeping its last value, an existing value replaced, and an empty call doing nothing.
func TestSetValuesStoresManyAtOnce(t *testing.T) {
	t.Parallel()
	s := pgtest.NewStore(t)
	ctx := t.Context()
	const tg, slack = bridge.Platform("telegram"), bridge.Platform("slack")
	if err := s.SetValue(ctx, tg, "lang.1", "de"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetValues(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetValues(ctx, []bridge.StoredValue{
		{Platform: tg, Key: "lang.1", Value: "fr"},
		{Platform: slack, Key: "lang.1", Value: "es"},
		{Platform: tg, Key: "lang.2", Value: "pt"},
		{Platform: tg, Key: "lang.1", Value: "it"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p         bridge.Platform
		key, want string
	}{{tg, "lang.1", "it"}, {slack, "lang.1", "es"}, {tg, "lang.2", "pt"}} {
		if got, ok, err := s.Value(ctx, c.p, c.key); err != nil || !ok || got != c.want {
			t.Errorf("%s %s = %q, %v, %v; want %q", c.p, c.key, got, ok, err, c.want)
		}
	}
}
