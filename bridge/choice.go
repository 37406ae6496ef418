package bridge

import (
	"context"
	"io"

	"github.com/onechat/onechat-bridge/onechat"
)

// submitValues stores a CSAT rating (rating > 0) or a chosen option on an interactive OneChat
// message, as OneChat's own widget does.
func (c *Core) submitValues(ctx context.Context, sourceID string, conversationID, messageID int64, rating int, choice *Choice) error {
	v := onechat.SubmittedValues{CSAT: &onechat.CSATResponse{Rating: rating}}
	if choice != nil {
		v = onechat.SubmittedValues{Values: []onechat.SubmittedValue{{Title: choice.Title, Value: choice.Value}}}
	}
	_, err := c.oc.UpdateMessage(ctx, sourceID, conversationID, messageID, v)
	return err
}

// download streams a OneChat attachment to an adapter. An attachment deleted in OneChat is a
// permanent failure; anything else is retried with the message.
func (c *Core) download(ctx context.Context, dataURL string) (io.ReadCloser, error) {
	rc, _, err := c.oc.Download(ctx, dataURL)
	if onechat.IsNotFound(err) {
		return nil, Permanent("the attachment no longer exists in OneChat", err)
	}
	return rc, err
}
