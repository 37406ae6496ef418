package bridge

import (
	"context"
	"errors"
	"io"
)

// submitValues stores a CSAT rating (rating > 0) or a chosen option on an interactive OneChat
// message. It waits for onechat's UpdateMessage, which is being added.
func (c *Core) submitValues(ctx context.Context, sourceID string, conversationID, messageID int64, rating int, choice *Choice) error {
	return errors.New("submitting interactive answers is not wired yet")
}

// download streams a OneChat attachment. It waits for onechat's Download, which is being added.
func (c *Core) download(ctx context.Context, dataURL string) (io.ReadCloser, error) {
	return nil, errors.New("downloading OneChat attachments is not wired yet")
}
