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
// to be matched byte for byte. A broadcast's message envelope is decoded with it: Event is its
// event name and Data its payload, left raw for the typed decoders.
type frame struct {
	Type       string
	Identifier string
	Event      string
	Data       json.RawMessage
	Reason     string
	// Reconnect is the disconnect frame's reconnect flag; Rails versions without it mean true.
	Reconnect bool
}

// parseFrame decodes a server frame, a broadcast's {"event":…,"data":…} envelope included, in
// one pass of the decoder (two over the bytes: encoding/json validates, then decodes). It never
// panics, and allocates in proportion to the frame (which ReadLimit bounds); the fuzz test
// holds it to both.
func parseFrame(b []byte) (frame, error) {
	var w struct {
		Type       string `json:"type"`
		Identifier string `json:"identifier"`
		Message    *struct {
			Event string          `json:"event"`
			Data  json.RawMessage `json:"data"`
		} `json:"message"`
		Reason    string `json:"reason"`
		Reconnect *bool  `json:"reconnect"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		// Only broadcasts carry an envelope: a ping's message is a number, which the decoder
		// reports after decoding the rest.
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) || typeErr.Field != "message" || w.Type == frameBroadcast {
			return frame{}, err
		}
		w.Message = nil
	}
	f := frame{Type: w.Type, Identifier: w.Identifier, Reason: w.Reason,
		Reconnect: w.Reconnect == nil || *w.Reconnect}
	if w.Message != nil {
		f.Event, f.Data = w.Message.Event, w.Message.Data
	}
	if f.Type == frameBroadcast && (f.Identifier == "" || w.Message == nil) {
		return frame{}, errFrameNoBroadcast
	}
	return f, nil
}

// event is a broadcast's event. Token is left for the caller, who knows which subscription the
// identifier belongs to.
func (f frame) event() (Event, bool) {
	if f.Event == "" {
		return Event{}, false
	}
	return Event{Name: f.Event, Data: f.Data}, true
}
