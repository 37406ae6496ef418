package onechat

import (
	"context"
	"errors"
	"net/http"
	"strconv"
)

// Application API route templates, used in errors and logs instead of real paths.
const (
	routeAccount             = "/api/v1/accounts/{account_id}"
	routeAccountLabels       = routeAccount + "/labels"
	routeAppConversation     = routeAccount + "/conversations/{conversation_id}"
	routeAppMessages         = routeAppConversation + "/messages"
	routeAppLabels           = routeAppConversation + "/labels"
	routeAppCustomAttributes = routeAppConversation + "/custom_attributes"
)

// ErrAccessToken says OneChat refused the Application API access token (401): it is wrong,
// was reset, or belongs to an agent without access to the account. It is reachable from the
// returned *APIError with errors.Is.
var ErrAccessToken = errors.New("onechat refused the access token: check ONECHAT_API_ACCESS_TOKEN (an agent's or agent bot's access token of this account) and ONECHAT_ACCOUNT_ID")

// AppClient calls OneChat's Application API (/api/v1/accounts/{account_id}/…) with an agent's
// or agent bot's access token, for what the Client API of an inbox cannot do: private notes,
// conversation labels and conversation custom attributes. It shares the Client's HTTP client,
// logger and request budget (OneChat limits requests per IP, whatever the API). The token goes
// in the api_access_token header only; it never appears in errors or logs. Errors are
// *APIError, classified like the Client API's (Classify); a 401 wraps ErrAccessToken. It is
// safe for concurrent use.
type AppClient struct {
	c           *Client
	accountID   int64
	accountPath string
	token       string
}

// Application returns a client of the Application API of account accountID, authenticated
// with token, that shares c's HTTP client, logger and request budget.
func (c *Client) Application(accountID int64, token string) *AppClient {
	return &AppClient{
		c:           c,
		accountID:   accountID,
		accountPath: "/api/v1/accounts/" + strconv.FormatInt(accountID, 10),
		token:       token,
	}
}

// AccountID is the account the client works in.
func (a *AppClient) AccountID() int64 { return a.accountID }

// ConversationDetails is what the bridge reads of a conversation through the Application API.
type ConversationDetails struct {
	ID               int64          `json:"id"`
	Status           string         `json:"status"`
	Labels           []string       `json:"labels"`
	CustomAttributes map[string]any `json:"custom_attributes"`
}

// CreatePrivateNote posts a private note in the conversation (its display id): agents see it,
// the contact never does (OneChat neither lists nor broadcasts private messages to contacts).
func (a *AppClient) CreatePrivateNote(ctx context.Context, conversationID int64, content string) (*Message, error) {
	var m Message
	err := a.do(ctx, call{op: "create private note", method: http.MethodPost, route: routeAppMessages,
		path: a.conversationPath(conversationID) + "/messages",
		body: map[string]any{"content": content, "message_type": "outgoing", "private": true}}, &m)
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// Conversation reads a conversation (its display id) with its labels and custom attributes.
func (a *AppClient) Conversation(ctx context.Context, conversationID int64) (*ConversationDetails, error) {
	var cv ConversationDetails
	err := a.do(ctx, call{op: "get conversation", method: http.MethodGet, route: routeAppConversation,
		path: a.conversationPath(conversationID)}, &cv)
	if err != nil {
		return nil, err
	}
	return &cv, nil
}

// ConversationLabels returns the labels of a conversation.
func (a *AppClient) ConversationLabels(ctx context.Context, conversationID int64) ([]string, error) {
	var out struct {
		Payload []string `json:"payload"`
	}
	err := a.do(ctx, call{op: "get conversation labels", method: http.MethodGet, route: routeAppLabels,
		path: a.conversationPath(conversationID) + "/labels"}, &out)
	if err != nil {
		return nil, err
	}
	return out.Payload, nil
}

// SetConversationLabels replaces the conversation's labels with labels (OneChat sets the
// whole list: read them first to add one) and returns the labels it now has.
func (a *AppClient) SetConversationLabels(ctx context.Context, conversationID int64, labels []string) ([]string, error) {
	if labels == nil {
		labels = []string{}
	}
	var out struct {
		Payload []string `json:"payload"`
	}
	err := a.do(ctx, call{op: "set conversation labels", method: http.MethodPost, route: routeAppLabels,
		path: a.conversationPath(conversationID) + "/labels", body: map[string]any{"labels": labels}}, &out)
	if err != nil {
		return nil, err
	}
	return out.Payload, nil
}

// SetConversationAttributes replaces the conversation's custom attributes with attrs (OneChat
// replaces the whole set: read the conversation first to keep the others).
func (a *AppClient) SetConversationAttributes(ctx context.Context, conversationID int64, attrs map[string]any) error {
	return a.do(ctx, call{op: "set conversation custom attributes", method: http.MethodPost, route: routeAppCustomAttributes,
		path: a.conversationPath(conversationID) + "/custom_attributes", body: map[string]any{"custom_attributes": attrs}}, nil)
}

// AccountLabels returns the titles of the account's labels. It is the cheap authenticated
// read `bridge check` uses to prove the token and the account id.
func (a *AppClient) AccountLabels(ctx context.Context) ([]string, error) {
	var out struct {
		Payload []struct {
			Title string `json:"title"`
		} `json:"payload"`
	}
	err := a.do(ctx, call{op: "list account labels", method: http.MethodGet, route: routeAccountLabels,
		path: a.accountPath + "/labels"}, &out)
	if err != nil {
		return nil, err
	}
	titles := make([]string, 0, len(out.Payload))
	for _, l := range out.Payload {
		titles = append(titles, l.Title)
	}
	return titles, nil
}

func (a *AppClient) conversationPath(conversationID int64) string {
	return a.accountPath + "/conversations/" + strconv.FormatInt(conversationID, 10)
}

// do sends an Application API call with the access token; a 401 wraps ErrAccessToken.
func (a *AppClient) do(ctx context.Context, cl call, out any) error {
	cl.accessToken = a.token
	err := a.c.do(ctx, cl, out)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusUnauthorized && ae.err == nil {
		ae.err = ErrAccessToken
	}
	return err
}
