// Package formdata builds multipart/form-data request bodies, the form platforms take file
// uploads in. It escapes the name and filename parameters, so that a file name an agent chose
// cannot end the header line and inject headers of its own, and it streams file contents from
// their readers into the request instead of holding them in memory.
package formdata

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// quoteEscaper escapes a parameter value for a quoted-string, as mime/multipart does for its
// own headers, and drops CR and LF: browsers percent-encode them, but a header line must never
// contain them, and a file name loses nothing without them.
var quoteEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "")

// Escape returns s ready to go between the double quotes of a Content-Disposition parameter.
func Escape(s string) string { return quoteEscaper.Replace(s) }

// FieldHeader returns the header of a form field called name whose value has contentType
// (none when empty), e.g. Discord's payload_json part in application/json.
func FieldHeader(name, contentType string) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="`+Escape(name)+`"`)
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return h
}

// FileHeader returns the header of a file part in field called filename, of contentType
// (application/octet-stream when empty, the type of "some bytes").
func FileHeader(field, filename, contentType string) textproto.MIMEHeader {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="`+Escape(field)+`"; filename="`+Escape(filename)+`"`)
	h.Set("Content-Type", contentType)
	return h
}

// Body is a multipart/form-data body under construction. Parts written with WriteField and
// CreatePart are buffered; a part added with StreamPart is read from its reader only when the
// finished body is read, so a large file goes from its source to the network without being
// held in memory and without a goroutine feeding an io.Pipe (which would need an owner and a
// way to stop it when the request fails). A Body is not safe for concurrent use.
type Body struct {
	mw      *multipart.Writer
	buf     *bytes.Buffer // the part being buffered, after readers
	readers []io.Reader   // the body so far, in order, without buf
}

// segmentWriter sends the multipart writer's output to the current buffer of a Body.
type segmentWriter struct{ b *Body }

func (w segmentWriter) Write(p []byte) (int, error) { return w.b.buf.Write(p) }

// NewBody returns an empty body with a random boundary.
func NewBody() *Body {
	b := &Body{buf: new(bytes.Buffer)}
	b.mw = multipart.NewWriter(segmentWriter{b: b})
	return b
}

// ContentType returns the request's Content-Type, boundary included.
func (b *Body) ContentType() string { return b.mw.FormDataContentType() }

// WriteField adds a form field with a plain-text value.
func (b *Body) WriteField(name, value string) error {
	w, err := b.CreatePart(FieldHeader(name, ""))
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, value)
	return err
}

// CreatePart starts a buffered part with header h; what is written to the returned writer is
// the part's content, until the next part starts.
func (b *Body) CreatePart(h textproto.MIMEHeader) (io.Writer, error) {
	return b.mw.CreatePart(h)
}

// StreamPart adds a part with header h whose content is read from r when the body is read.
// The caller keeps r open until the request is done and closes it then.
func (b *Body) StreamPart(h textproto.MIMEHeader, r io.Reader) error {
	if _, err := b.mw.CreatePart(h); err != nil {
		return err
	}
	b.readers = append(b.readers, b.buf, r)
	b.buf = new(bytes.Buffer)
	return nil
}

// Finish writes the closing boundary and returns the whole body, to be read once. A body
// without streamed parts is a *bytes.Reader, so that http.NewRequest sets its Content-Length;
// with streamed parts its length is unknown and the request is sent chunked.
func (b *Body) Finish() (io.Reader, error) {
	if err := b.mw.Close(); err != nil {
		return nil, err
	}
	if len(b.readers) == 0 {
		return bytes.NewReader(b.buf.Bytes()), nil
	}
	return io.MultiReader(append(b.readers, b.buf)...), nil
}
