package bridge

import (
	"context"

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
