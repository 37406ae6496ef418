package onechat

import (
	"encoding/json"
	"errors"
)

// Server frame types. Broadcasts carry no type.
const (
	frameBroadcast  = ""
	frameWelcome    = "welcome"
	framePing       = "ping"
	frameConfirm    = "confirm_subscription"
	frameReject     = "reject_subscription"
	frameDisconnect = "disconnect"
)

var errFrameNoBroadcast = errors.New("frame has no type and is not a broadcast")

// frame is one server frame, decoded. Identifier is kept as the raw string the server echoed,
// to be matched byte for byte.
type frame struct {
	Type       string
	Identifier string
	Message    json.RawMessage
	Reason     string
	// Reconnect is the disconnect frame's reconnect flag; Rails versions without it mean true.
	Reconnect bool
}

// parseFrame decodes a server frame. It never panics, and allocates in proportion to the frame
// (which ReadLimit bounds); the fuzz test holds it to both.
func parseFrame(b []byte) (frame, error) {
	var w struct {
		Type       string          `json:"type"`
		Identifier string          `json:"identifier"`
		Message    json.RawMessage `json:"message"`
		Reason     string          `json:"reason"`
		Reconnect  *bool           `json:"reconnect"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return frame{}, err
	}
	f := frame{Type: w.Type, Identifier: w.Identifier, Message: w.Message, Reason: w.Reason,
		Reconnect: w.Reconnect == nil || *w.Reconnect}
	if f.Type == frameBroadcast && (f.Identifier == "" || len(f.Message) == 0) {
		return frame{}, errFrameNoBroadcast
	}
	return f, nil
}

// event decodes the {"event":…,"data":…} envelope of a broadcast. Token is left for the
// caller, who knows which subscription the identifier belongs to.
func (f frame) event() (Event, bool) {
	var msg struct {
		Event string          `json:"event"`
		Data  json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(f.Message, &msg); err != nil || msg.Event == "" {
		return Event{}, false
	}
	return Event{Name: msg.Event, Data: msg.Data}, true
}
