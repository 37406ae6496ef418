package onechat

import (
	"encoding/json"
	"errors"
	"strings"
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
// event name and Payload its payload, decoded for the typed decoders (payloadWire); Data is
// the payload left raw instead, only when it is not an object: the typed decoders then report
// it as undecodable, as they do a broadcast without a payload.
type frame struct {
	Type       string
	Identifier string
	Event      string
	Payload    *payloadWire
	Data       json.RawMessage
	Reason     string
	// Reconnect is the disconnect frame's reconnect flag; Rails versions without it mean true.
	Reconnect bool
}

// parseFrame decodes a server frame, a broadcast's {"event":…,"data":…} envelope and its
// payload included, in one pass of the decoder (two over the bytes: encoding/json validates,
// then decodes). It never panics, and allocates in proportion to the frame (which ReadLimit
// bounds); the fuzz test holds it to both.
func parseFrame(b []byte) (frame, error) {
	var w frameWire[*payloadWire]
	err := json.Unmarshal(b, &w)
	if typeErr := (*json.UnmarshalTypeError)(nil); errors.As(err, &typeErr) &&
		(typeErr.Field == "message.data" || strings.HasPrefix(typeErr.Field, "message.data.")) {
		// A payload that is not an object: kept raw, for the typed decoders to refuse.
		var raw frameWire[json.RawMessage]
		f, data, err := raw.decode(b)
		f.Data = data
		return f, err
	}
	// Without data (or with null) Payload stays nil and the typed decoders report the event
	// as undecodable.
	f, payload, err := w.frame(err)
	f.Payload = payload
	return f, err
}

// frameWire is a server frame as the server sends it, with the broadcast payload as D.
type frameWire[D any] struct {
	Type       string `json:"type"`
	Identifier string `json:"identifier"`
	Message    *struct {
		Event string `json:"event"`
		Data  D      `json:"data"`
	} `json:"message"`
	Reason    string `json:"reason"`
	Reconnect *bool  `json:"reconnect"`
}

// decode decodes b into w and returns it as frame does.
func (w *frameWire[D]) decode(b []byte) (frame, D, error) {
	return w.frame(json.Unmarshal(b, w))
}

// frame returns the frame w holds and its broadcast payload, given the error decoding it
// returned.
func (w *frameWire[D]) frame(err error) (frame, D, error) {
	var none D
	if err != nil {
		// Only broadcasts carry an envelope: a ping's message is a number, which the decoder
		// reports after decoding the rest.
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) || typeErr.Field != "message" || w.Type == frameBroadcast {
			return frame{}, none, err
		}
		w.Message = nil
	}
	f := frame{Type: w.Type, Identifier: w.Identifier, Reason: w.Reason,
		Reconnect: w.Reconnect == nil || *w.Reconnect}
	if f.Type == frameBroadcast && (f.Identifier == "" || w.Message == nil) {
		return frame{}, none, errFrameNoBroadcast
	}
	if w.Message == nil {
		return f, none, nil
	}
	f.Event = w.Message.Event
	return f, w.Message.Data, nil
}

// event is a broadcast's event. Token is left for the caller, who knows which subscription the
// identifier belongs to.
func (f frame) event() (Event, bool) {
	if f.Event == "" {
		return Event{}, false
	}
	return Event{Name: f.Event, Data: f.Data, payload: f.Payload}, true
}
