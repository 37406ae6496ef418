package onechat

import (
	"context"
	"fmt"
	"net/http"

	"go.uber.org/zap"
)

// feature is a Client API route that older OneChat servers lack (rough edge 19): show and
// toggle_status came after 2023, toggle_typing and update_last_seen in July 2023.
type feature int

const (
	featureShow feature = iota
	featureToggleStatus
	featureToggleTyping
	featureUpdateLastSeen
	numFeatures
)

var featureRoutes = [numFeatures]string{
	featureShow:           routeConversation,
	featureToggleStatus:   routeConversation + "/toggle_status",
	featureToggleTyping:   routeConversation + "/toggle_typing",
	featureUpdateLastSeen: routeConversation + "/update_last_seen",
}

// Supported reports which optional routes the client still uses: false once a route proved
// missing on this server (its calls then return ErrUnsupported, or, for conversation show,
// fall back to the conversation list). Keys are the route templates. It is for health pages
// and tests.
func (c *Client) Supported() map[string]bool {
	out := make(map[string]bool, numFeatures)
	for f := range numFeatures {
		out[featureRoutes[f]] = !c.missing[f].Load()
	}
	return out
}

// optional calls a route that older servers lack. Once the route proved missing it returns
// ErrUnsupported at once, without a request.
func (c *Client) optional(ctx context.Context, f feature, sourceID string, conversationID int64, cl call, out any) error {
	if c.missing[f].Load() {
		return fmt.Errorf("%s: %w", cl.op, ErrUnsupported)
	}
	err := c.do(ctx, cl, out)
	if err == nil {
		return nil
	}
	missing, perr := c.featureMissing(ctx, f, sourceID, conversationID, err)
	switch {
	case perr != nil:
		return perr
	case missing:
		return fmt.Errorf("%s: %w", cl.op, ErrUnsupported)
	}
	return err
}

// featureMissing decides whether err, the answer of optional route f for a conversation,
// means "this server has no such route" (true) or is about the conversation itself (false).
//
// The rule: OneChat answers an unknown route and an unknown conversation with the same 404
// and, for a JSON request, the same body {"status":404,"error":"Not Found"} (Rails'
// PublicExceptions; §2.1), so neither status nor body can tell them apart. So on a 404 the
// client asks a route every version has about the same conversation: GET …/messages?before=1
// (an empty page, cheap). 200 there means the conversation exists and the route is missing:
// the feature is switched off for the life of the client, with one warning. 404 there means
// the conversation (or the contact session) is gone, and the original 404 stands. Any other
// failure of the probe is returned instead (perr), so an undecided 404 is never mistaken for
// a deleted conversation. Errors other than 404 are returned as they are.
func (c *Client) featureMissing(ctx context.Context, f feature, sourceID string, conversationID int64, err error) (missing bool, perr error) {
	if !IsNotFound(err) {
		return false, nil
	}
	var page messageList
	probe := c.do(ctx, call{op: "probe conversation", method: http.MethodGet, route: routeMessages,
		path: c.conversationPath(sourceID, conversationID) + "/messages?before=1"}, &page)
	switch {
	case probe == nil:
	case IsNotFound(probe):
		return false, nil
	default:
		return false, fmt.Errorf("tell a missing route from a missing conversation: %w", probe)
	}
	if c.missing[f].CompareAndSwap(false, true) {
		c.log.Warn("onechat server lacks this route; feature switched off", zap.String("route", featureRoutes[f]))
	}
	return true, nil
}
