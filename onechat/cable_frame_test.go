package onechat

import "testing"

// BenchmarkCableMessageEvent decodes a message.created broadcast as the cable and the core do:
// the frame, the event envelope and the message.
//
//	go test -run '^$' -bench CableMessageEvent -benchmem ./onechat/
func BenchmarkCableMessageEvent(b *testing.B) {
	benchmarkCableEvent(b, EventMessageCreated, sampleCableMessage, func(ev Event) bool {
		m, err := ev.Message()
		return err == nil && m.ID == 1202
	})
}

// benchmarkCableEvent decodes a broadcast of the event with the payload data as the cable does
// (the frame, the envelope), then as the core does (decoded: what it returns must be right).
func benchmarkCableEvent(b *testing.B, event, data string, decoded func(Event) bool) {
	frame := []byte(`{"identifier":"{\"channel\":\"RoomChannel\",\"pubsub_token\":\"JJhR4TG2fY93A3Ag8N2qjd2r\"}","message":{"event":"` + event + `","data":` + data + `}}`)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, err := parseFrame(frame)
		if err != nil {
			b.Fatal(err)
		}
		ev, ok := f.event()
		if !ok {
			b.Fatal("no event")
		}
		if !decoded(ev) {
			b.Fatalf("%s decoded wrongly", event)
		}
	}
}

// TestParseFrame: the frame, a broadcast's envelope and its payload come out of one decode; a
// ping's number message is no error, a broadcast without an envelope is; a broadcast whose
// payload is missing or not an object is delivered, for its decoders to report undecodable.
func TestParseFrame(t *testing.T) {
	for _, tc := range []struct {
		in          string
		typ, event  string
		id          int64 // the payload's id, as Message decodes it
		undecodable bool  // Message reports an error
		wantErr     bool
	}{
		{in: `{"type":"ping","message":1736500000}`, typ: framePing},
		{in: `{"type":"welcome"}`, typ: frameWelcome},
		{in: `{"type":"confirm_subscription","identifier":"i"}`, typ: frameConfirm},
		{in: `{"identifier":"i","message":{"data":{"id":1},"event":"message.created"}}`, event: "message.created", id: 1},
		{in: `{"identifier":"i","message":{"event":"message.created","data":{"id":"7","sender":{"id":"x"}}}}`, event: "message.created", id: 7},
		{in: `{"identifier":"i","message":{"event":"presence.update"}}`, event: "presence.update", undecodable: true},
		{in: `{"identifier":"i","message":{"event":"message.created","data":"x"}}`, event: "message.created", undecodable: true},
		{in: `{"identifier":"i","message":{"event":"message.created","data":[{"id":1}]}}`, event: "message.created", undecodable: true},
		{in: `{"identifier":"i","message":"SECRET"}`, wantErr: true},
		{in: `{"identifier":"i"}`, wantErr: true},
		{in: `{"message":{"event":"message.created","data":{}}}`, wantErr: true},
		{in: `{"message":{"event":"message.created","data":"x"}}`, wantErr: true},
		{in: `{"type":"confirm_subscription","identifier":5}`, wantErr: true},
	} {
		f, err := parseFrame([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("parseFrame(%s) error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if f.Type != tc.typ || f.Event != tc.event {
			t.Errorf("parseFrame(%s) = type %q event %q; want %q %q", tc.in, f.Type, f.Event, tc.typ, tc.event)
		}
		ev, ok := f.event()
		if ok != (tc.event != "") {
			t.Errorf("parseFrame(%s): event() ok = %v", tc.in, ok)
		}
		if !ok {
			continue
		}
		m, err := ev.Message()
		if (err != nil) != tc.undecodable || err == nil && m.ID != tc.id {
			t.Errorf("parseFrame(%s): Message() = %+v, %v; want id %d, undecodable %v", tc.in, m, err, tc.id, tc.undecodable)
		}
	}
}

// BenchmarkCableConversationEvent decodes a conversation.updated broadcast as the cable and the
// core do: the frame, the event envelope and the conversation (with its embedded messages).
//
//	go test -run '^$' -bench CableConversationEvent -benchmem ./onechat/
func BenchmarkCableConversationEvent(b *testing.B) {
	benchmarkCableEvent(b, EventConversationUpdated, sampleCableConversation, func(ev Event) bool {
		c, err := ev.Conversation()
		return err == nil && c.ID == 21 && c.LatestMessageID == 1202
	})
}
