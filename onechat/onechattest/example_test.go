package onechattest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// Example runs the fake standalone, creates a contact session over the Client API and reads
// the fake's state back. Tests would use NewServer(t, nil) instead of New and httptest.
func Example() {
	fake := onechattest.New(&onechattest.Options{Logf: func(string, ...any) {}})
	srv := httptest.NewServer(fake.Handler())
	defer func() { srv.Close(); fake.Close() }()

	resp, err := http.Post(srv.URL+"/public/api/v1/inboxes/"+fake.InboxIdentifier()+"/contacts",
		"application/json", strings.NewReader(`{"identifier":"telegram:42","name":"Alice","custom_attributes":{"chats":3}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = resp.Body.Close()
	c, _ := fake.ContactByIdentifier("telegram:42")
	fmt.Println(resp.StatusCode, c.Name, c.CustomAttributes["chats"] == int64(3), len(fake.ContactInboxes(c.ID)))
	// Output: 200 Alice true 1
}
