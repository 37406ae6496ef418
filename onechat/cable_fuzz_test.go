package onechat

import (
	"runtime"
	"testing"
)

// FuzzCableFrame feeds arbitrary bytes to the frame decoder and to every typed event decoder:
// none may panic, and together they may not allocate more than a fixed multiple of the input
// (ReadLimit bounds a frame, so bounded-per-byte means bounded). Plain `go test` runs the seeds
// in testdata/fuzz/FuzzCableFrame and those added here; `go test -fuzz FuzzCableFrame
// ./onechat/` explores.
func FuzzCableFrame(f *testing.F) {
	for _, seed := range []string{
		`{"type":"welcome"}`,
		`{"type":"ping","message":1736500000}`,
		`{"identifier":"{\"channel\":\"RoomChannel\",\"pubsub_token\":\"x\"}","type":"confirm_subscription"}`,
		`{"identifier":"{\"channel\":\"RoomChannel\",\"pubsub_token\":\"x\"}","type":"reject_subscription"}`,
		`{"type":"disconnect","reason":"server_restart","reconnect":true}`,
		`{"type":"disconnect","reason":"unauthorized"}`,
		`{"identifier":"i","message":{"event":"message.created","data":` + sampleCableMessage + `}}`,
		`{"identifier":"i","message":{"event":"message.updated","data":{"id":"12","previous_changes":{"status":["sent","read"]}}}}`,
		`{"identifier":"i","message":{"event":"conversation.status_changed","data":` + sampleCableConversation + `}}`,
		`{"identifier":"i","message":{"event":"conversation.typing_on","data":{"conversation":{"id":1},"is_private":"true"}}}`,
		`{"identifier":"i","message":{"event":"presence.update","data":{"users":{"3":"online","x":1}}}}`,
		`{"identifier":"i","message":{"event":"x","data":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}}`,
		`{"identifier":"i","message":"SECRET"}`,
		`[1,2,3]`,
		`{"identifier":5}`,
		"\xff\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		decodeAll(b)
		runtime.ReadMemStats(&after)
		// Generous: json decoding of a value costs a few times its size, plus fixed overhead
		// for the decoders' state. What must never happen is growth beyond the input.
		if grew, limit := after.TotalAlloc-before.TotalAlloc, uint64(64*len(b)+256<<10); grew > limit {
			t.Fatalf("decoding %d bytes allocated %d bytes (limit %d)", len(b), grew, limit)
		}
	})
}

// decodeAll runs a frame through everything the reader and a handler would do with it.
func decodeAll(b []byte) {
	f, err := parseFrame(b)
	if err != nil || f.Type != frameBroadcast {
		return
	}
	ev, ok := f.event()
	if !ok {
		return
	}
	_, _ = ev.Decode()
	_, _ = ev.Message()
	_, _ = ev.Conversation()
	_, _ = ev.Typing()
	_, _ = ev.Presence()
	_, _ = ev.ChangedFields()
}
