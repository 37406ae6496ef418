package formdata_test

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/onechat/onechat-bridge/adapters/formdata"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"report.pdf":              "report.pdf",
		`say "hi".txt`:            `say \"hi\".txt`,
		`C:\temp\a.txt`:           `C:\\temp\\a.txt`,
		"a\r\nX-Evil: 1.txt":      "aX-Evil: 1.txt",
		"новый отчёт 😀.txt":       "новый отчёт 😀.txt",
		`\"` + "\n" + `\"`:        `\\\"\\\"`,
		"":                        "",
		"tab\tstays":              "tab\tstays",
		"\"\r\n\r\n<script>":      `\"<script>`,
		"name\"; filename=\"x.sh": `name\"; filename=\"x.sh`,
	} {
		if got := formdata.Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// part is what a server reads back from one part.
type part struct {
	name, filename, contentType, body string
	headers                           int
}

// parse reads body as a server would.
func parse(t *testing.T, contentType string, body io.Reader) []part {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("content type %q: %v", contentType, err)
	}
	mr := multipart.NewReader(body, params["boundary"])
	var parts []part
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return parts
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		// Part.FileName would keep only the base name; the whole parameter is what was sent.
		_, disp, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
		if err != nil {
			t.Fatalf("content disposition %q: %v", p.Header.Get("Content-Disposition"), err)
		}
		parts = append(parts, part{name: p.FormName(), filename: disp["filename"], contentType: p.Header.Get("Content-Type"), body: string(b), headers: len(p.Header)})
	}
}

func TestBodyHeaderInjection(t *testing.T) {
	b := formdata.NewBody()
	evil := "x.txt\"\r\nContent-Type: text/html\r\n\r\n<h1>owned"
	w, err := b.CreatePart(formdata.FileHeader("files[0]", evil, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, "data")
	body, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	got := parse(t, b.ContentType(), body)
	if len(got) != 1 {
		t.Fatalf("parts %+v", got)
	}
	p := got[0]
	if p.headers != 2 || p.contentType != "application/octet-stream" || p.body != "data" || p.name != "files[0]" {
		t.Fatalf("part %+v: the file name injected a header or content", p)
	}
	if want := `x.txt"Content-Type: text/html<h1>owned`; p.filename != want {
		t.Fatalf("filename %q, want %q", p.filename, want)
	}
}

// lazyReader records whether it was read.
type lazyReader struct {
	r    io.Reader
	read bool
}

func (l *lazyReader) Read(p []byte) (int, error) {
	l.read = true
	return l.r.Read(p)
}

func TestBodyStreamsParts(t *testing.T) {
	b := formdata.NewBody()
	file := &lazyReader{r: strings.NewReader(strings.Repeat("0123456789", 10000))}
	if err := b.WriteField("chat_id", "42"); err != nil {
		t.Fatal(err)
	}
	if err := b.StreamPart(formdata.FileHeader("document", "big.bin", "application/zip"), file); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteField("caption", "see \"this\""); err != nil {
		t.Fatal(err)
	}
	body, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if file.read {
		t.Fatal("the file was read before the body")
	}
	if _, ok := body.(*bytes.Reader); ok {
		t.Fatal("a streamed body must not claim a length")
	}
	got := parse(t, b.ContentType(), body)
	want := []part{
		{name: "chat_id", body: "42", headers: 1},
		{name: "document", filename: "big.bin", contentType: "application/zip", body: strings.Repeat("0123456789", 10000), headers: 2},
		{name: "caption", body: `see "this"`, headers: 1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d parts, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("part %d: got %.80v, want %.80v", i, got[i], want[i])
		}
	}
}

func TestBodyBufferedHasLength(t *testing.T) {
	b := formdata.NewBody()
	w, err := b.CreatePart(formdata.FieldHeader("payload_json", "application/json"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, `{"content":"hi"}`)
	body, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := body.(*bytes.Reader); !ok {
		t.Fatalf("body is %T, want *bytes.Reader so the request has a Content-Length", body)
	}
	got := parse(t, b.ContentType(), body)
	if len(got) != 1 || got[0] != (part{name: "payload_json", contentType: "application/json", body: `{"content":"hi"}`, headers: 2}) {
		t.Fatalf("parts %+v", got)
	}
}

func TestBodyStreamError(t *testing.T) {
	b := formdata.NewBody()
	boom := errors.New("disk gone")
	if err := b.StreamPart(formdata.FileHeader("photo", "a.jpg", "image/jpeg"), io.MultiReader(strings.NewReader("abc"), errReader{boom})); err != nil {
		t.Fatal(err)
	}
	body, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(body); !errors.Is(err, boom) {
		t.Fatalf("read body: %v, want the file's error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
