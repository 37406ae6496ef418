package slack

import (
	"errors"
	"strings"
	"testing"
	"time"

	slackgo "github.com/slack-go/slack"

	"github.com/onechat/onechat-bridge/bridge"
)

func TestParseChat(t *testing.T) {
	for _, tc := range []struct {
		id, channel, thread string
		ok                  bool
	}{
		{"D0123ABC", "D0123ABC", "", true},
		{"C0123ABC:1712345678.000200", "C0123ABC", "1712345678.000200", true},
		{"C0123ABC:notats", "", "", false},
		{"c0123:1.2", "", "", false},
		{"", "", "", false},
		{"D01:1712345678.000200:x", "", "", false},
	} {
		ch, th, ok := parseChat(bridge.ChatRef{Platform: Platform, ID: tc.id})
		if ok != tc.ok || (ok && (ch != tc.channel || th != tc.thread)) {
			t.Errorf("parseChat(%q) = %q, %q, %v", tc.id, ch, th, ok)
		}
	}
	if _, _, ok := parseChat(bridge.ChatRef{Platform: "discord", ID: "D0123ABC"}); ok {
		t.Error("another platform's chat parsed")
	}
}

func TestSplitKeepsLinksAndEntitiesWhole(t *testing.T) {
	link := "<https://example.com/a|a link with words>"
	text := "aaaa aaaa " + link + " bbbb bbbb x&amp;y cccc"
	for limit := len(link); limit < len(text); limit++ {
		parts := splitter.Split(text, limit)
		for _, p := range parts {
			if strings.Count(p, "<") != strings.Count(p, ">") || strings.Contains(p, "&") && !strings.Contains(p, "&amp;") {
				t.Fatalf("limit %d: part %q cuts a token (parts %q)", limit, p, parts)
			}
		}
	}
}

func TestClassify(t *testing.T) {
	unreachable := func(err error) bool {
		var p *bridge.PermanentError
		return errors.As(err, &p) && p.Unreachable
	}
	permanent := func(err error) bool {
		var p *bridge.PermanentError
		return errors.As(err, &p) && !p.Unreachable
	}
	limited := func(d time.Duration) func(error) bool {
		return func(err error) bool {
			var rl *bridge.RateLimitedError
			return errors.As(err, &rl) && rl.RetryAfter == d
		}
	}
	retried := func(err error) bool { return err != nil && !permanent(err) && !unreachable(err) && !limited(0)(err) }
	for _, tc := range []struct {
		name string
		err  error
		want func(error) bool
	}{
		{"429", &slackgo.RateLimitedError{RetryAfter: 4 * time.Second}, limited(4 * time.Second)},
		{"429 without Retry-After", slackgo.StatusCodeError{Code: 429}, limited(30 * time.Second)},
		{"502", slackgo.StatusCodeError{Code: 502}, retried},
		{"404", slackgo.StatusCodeError{Code: 404}, permanent},
		{"not_in_channel", slackgo.SlackErrorResponse{Err: "not_in_channel"}, unreachable},
		{"is_archived", slackgo.SlackErrorResponse{Err: "is_archived"}, unreachable},
		{"internal_error", slackgo.SlackErrorResponse{Err: "internal_error"}, retried},
		{"msg_too_long", slackgo.SlackErrorResponse{Err: "msg_too_long"}, permanent},
		{"network", errors.New("connection reset by peer"), retried},
	} {
		if got := classify(tc.err); !tc.want(got) {
			t.Errorf("%s: classify = %#v", tc.name, got)
		}
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}

func TestSizeTextAndTSTime(t *testing.T) {
	for n, want := range map[int64]string{0: "size unknown", 512: "512 B", 1500: "1.5 kB", 2_500_000: "2.5 MB", 3_000_000_000: "3.0 GB"} {
		if got := sizeText(n); got != want {
			t.Errorf("sizeText(%d) = %q, want %q", n, got, want)
		}
	}
	if got := tsTime("1712345678.000200"); got.Unix() != 1712345678 || got.Nanosecond() != 200000 {
		t.Errorf("tsTime = %v", got)
	}
}
