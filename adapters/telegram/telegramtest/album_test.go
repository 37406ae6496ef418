package telegramtest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/telegram/telegramtest"
)

// album posts sendMediaGroup with media as its JSON parameter and one upload per entry of
// files (part name → content).
func album(t *testing.T, c *http.Client, s *telegramtest.Server, media []map[string]string, files map[string]string) reply {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	_ = mw.WriteField("chat_id", "42")
	b, _ := json.Marshal(media)
	_ = mw.WriteField("media", string(b))
	for name, data := range files {
		fw, _ := mw.CreateFormFile(name, name+".bin")
		_, _ = io.WriteString(fw, data)
	}
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/bot"+token+"/sendMediaGroup", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return do(t, c, req)
}

func items(typ string, n int) ([]map[string]string, map[string]string) {
	var media []map[string]string
	files := map[string]string{}
	for i := range n {
		name := "f" + strconv.Itoa(i)
		media = append(media, map[string]string{"type": typ, "media": "attach://" + name})
		files[name] = "data" + strconv.Itoa(i)
	}
	return media, files
}

func TestSendMediaGroupReturnsEveryMessageOfTheAlbum(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	s.SendText(alice, "hi")

	media, files := items("photo", 3)
	media[1]["type"] = "video"
	media[0]["caption"], media[0]["parse_mode"] = "<b>look</b>", "HTML"
	r := album(t, c, s, media, files)
	if !r.OK {
		t.Fatalf("sendMediaGroup: %+v", r)
	}
	var msgs []struct {
		MessageID    int             `json:"message_id"`
		MediaGroupID string          `json:"media_group_id"`
		Caption      string          `json:"caption"`
		Photo        json.RawMessage `json:"photo"`
		Video        json.RawMessage `json:"video"`
	}
	if err := json.Unmarshal(r.Result, &msgs); err != nil || len(msgs) != 3 {
		t.Fatalf("result %s: %v", r.Result, err)
	}
	if msgs[0].Caption != "look" || msgs[0].Photo == nil || msgs[1].Video == nil || msgs[0].MediaGroupID == "" ||
		msgs[2].MediaGroupID != msgs[0].MediaGroupID || msgs[1].MessageID != msgs[0].MessageID+1 {
		t.Errorf("messages %+v", msgs)
	}
	sent := s.Sent(alice.ID)
	if len(sent) != 3 || sent[0].Method != "sendMediaGroup" || sent[0].Text != "look" || len(sent[0].Entities) != 1 ||
		string(sent[1].File.Data) != "data1" || sent[2].MediaGroupID != msgs[0].MediaGroupID {
		t.Errorf("sent %+v", sent)
	}
}

func TestSendMediaGroupRefusesWhatTelegramRefuses(t *testing.T) {
	s := telegramtest.NewServer(t, token)
	c := newClient(t)
	s.SendText(alice, "hi")

	one, oneFile := items("photo", 1)
	eleven, elevenFiles := items("photo", 11)
	missing, _ := items("photo", 2)
	mixed, mixedFiles := items("photo", 2)
	mixed[1]["type"] = "document"
	long, longFiles := items("video", 2)
	long[1]["caption"] = strings.Repeat("x", 1025)
	cases := []struct {
		name  string
		media []map[string]string
		files map[string]string
		want  string
	}{
		{"one item", one, oneFile, "wrong number of media"},
		{"eleven items", eleven, elevenFiles, "wrong number of media"},
		{"attach:// without its part", missing, nil, "MEDIA_EMPTY"},
		{"documents mixed with photos", mixed, mixedFiles, "can't be mixed"},
		{"caption too long", long, longFiles, "caption is too long"},
	}
	for _, tc := range cases {
		if r := album(t, c, s, tc.media, tc.files); r.OK || r.ErrorCode != 400 || !strings.Contains(r.Description, tc.want) {
			t.Errorf("%s: %+v, want 400 %q", tc.name, r, tc.want)
		}
	}
	s.RejectPhotos()
	two, twoFiles := items("photo", 2)
	if r := album(t, c, s, two, twoFiles); r.OK || !strings.Contains(r.Description, "IMAGE_PROCESS_FAILED") {
		t.Errorf("rejected photo: %+v", r)
	}
	s.Block(alice.ID)
	if r := album(t, c, s, two, twoFiles); r.OK || r.ErrorCode != 403 {
		t.Errorf("blocked: %+v", r)
	}
	if n := len(s.Sent(alice.ID)); n != 0 {
		t.Errorf("%d messages sent by refused albums, want none (an album is sent whole or not at all)", n)
	}
}
