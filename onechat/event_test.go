package onechat

import (
	"errors"
	"reflect"
	"testing"
)

func TestEventDecode(t *testing.T) {
	conv := ConversationEvent{ID: 21, Status: StatusResolved, ContactSourceID: testSourceID, InboxID: 7, LatestMessageID: 1202}
	for _, tc := range []struct {
		name, event, data string
		want              any
	}{
		{"message created", EventMessageCreated, `{"id":1202,"content":"hi","message_type":1,"conversation_id":21,"created_at":1736500060.5}`,
			&Message{ID: 1202, Content: "hi", MessageType: MessageOutgoing, ConversationID: 21, CreatedAt: 1736500060}},
		{"message updated", EventMessageUpdated, `{"id":"1202","content_attributes":{"deleted":true},"previous_changes":{"content":["a","b"]}}`,
			&Message{ID: 1202, ContentAttributes: map[string]any{"deleted": true}}},
		{"conversation created", EventConversationCreated, sampleCableConversation, &conv},
		{"status changed", EventConversationStatusChanged, sampleCableConversation, &conv},
		{"conversation updated", EventConversationUpdated, sampleCableConversation, &conv},
		{"typing on, private", EventTypingOn, `{"conversation":` + sampleCableConversation + `,"is_private":true,"user":{"id":3,"name":"John","type":"user"}}`,
			&TypingEvent{On: true, Private: true, Conversation: conv, User: &Sender{ID: 3, Name: "John", Type: "user"}}},
		{"typing off", EventTypingOff, `{"conversation":{"id":21},"is_private":false}`,
			&TypingEvent{Conversation: ConversationEvent{ID: 21}}},
		{"presence", EventPresenceUpdate, `{"account_id":1,"users":{"3":"online","5":"busy","bot":"online","6":7}}`,
			&PresenceEvent{Users: map[int64]string{3: "online", 5: "busy"}}},
		{"missing keys", EventConversationStatusChanged, `{}`, &ConversationEvent{}},
		{"null data", EventPresenceUpdate, `null`, &PresenceEvent{Users: map[int64]string{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := Event{Token: tok1, Name: tc.event, Data: []byte(tc.data)}
			if !ev.Known() {
				t.Fatal("not Known")
			}
			got, err := ev.Decode()
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := got.(*Message); ok {
				// Compare what the core reads; Message has more fields than the table sets.
				w := tc.want.(*Message)
				if m.ID != w.ID || m.Content != w.Content || m.MessageType != w.MessageType ||
					m.ConversationID != w.ConversationID || m.CreatedAt != w.CreatedAt || m.Deleted() != w.Deleted() {
					t.Errorf("Decode = %+v, want %+v", m, w)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decode = %#v, want %#v", got, tc.want)
			}
		})
	}

	ev := Event{Name: "conversation.recording", Data: []byte(`{}`)}
	if _, err := ev.Decode(); ev.Known() || !errors.Is(err, ErrUnknownEvent) {
		t.Errorf("unknown event: Known %t, Decode error %v", ev.Known(), err)
	}
	if _, err := (Event{Name: EventMessageCreated, Data: []byte(`{"id":`)}).Decode(); err == nil {
		t.Error("truncated payload decoded without error")
	}
}

func TestEventChangedFields(t *testing.T) {
	ev := Event{Name: EventMessageUpdated, Data: []byte(`{"id":1,"previous_changes":{"status":["sent","read"],"content":["a","b"]}}`)}
	if got, ok := ev.ChangedFields(); !ok || !reflect.DeepEqual(got, []string{"content", "status"}) {
		t.Errorf("ChangedFields = %v, %t", got, ok)
	}
	ev.Data = []byte(`{"id":1}`) // older servers
	if got, ok := ev.ChangedFields(); ok || got != nil {
		t.Errorf("ChangedFields without previous_changes = %v, %t", got, ok)
	}
}
