package onechat

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onechat/onechat-bridge/onechat/onechattest"
)

// agentFile posts an agent reply with one attachment and returns its data_url.
func agentFile(t *testing.T, e *fakeEnv, data []byte) (dataURL string, conv int64) {
	t.Helper()
	_, cv := e.session("telegram:1")
	m := e.fake.PostAgentMessage(cv.ID, onechattest.AgentMessage{Content: "here", Attachments: []onechattest.File{
		{Filename: "report 1.pdf", ContentType: "application/pdf", Data: data},
	}})
	return m.Attachments[0].DataURL, cv.ID
}

// withHost returns rawURL with its scheme and host replaced.
func withHost(t *testing.T, rawURL, base string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := url.Parse(base)
	u.Scheme, u.Host = b.Scheme, b.Host
	return u.String()
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "http://" + ln.Addr().String()
	ln.Close()
	return addr
}

func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDownload(t *testing.T) {
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 1000)

	t.Run("follows the redirect", func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		dataURL, _ := agentFile(t, e, data)
		rc, info, err := e.c.Download(ctx, dataURL)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, rc); !bytes.Equal(got, data) {
			t.Errorf("got %d bytes, want %d", len(got), len(data))
		}
		want := DownloadInfo{ContentType: "application/pdf", Filename: "report 1.pdf", Size: int64(len(data))}
		if info != want {
			t.Errorf("info = %+v, want %+v", info, want)
		}
		// The fake logs a request once its handler returned, which may be after the client read
		// the last byte: wait for the log rather than racing it.
		var last2 []onechattest.Request
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err = e.fake.Wait(waitCtx, func() bool {
			reqs := e.fake.Requests()
			if len(reqs) < 2 {
				return false
			}
			last2 = reqs[len(reqs)-2:]
			return last2[0].Status == http.StatusFound && strings.Contains(last2[1].Path, "/disk/") && last2[1].Status == 200
		})
		if err != nil {
			t.Errorf("requests = %+v, want the redirect then the bytes", last2)
		}
	})

	t.Run("unreachable host falls back to the base URL, once warned, then remembered", func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		dataURL, _ := agentFile(t, e, data)
		wrong := withHost(t, dataURL, closedAddr(t))
		for range 2 {
			rc, _, err := e.c.Download(ctx, wrong)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, data) {
				t.Errorf("got %d bytes", len(got))
			}
		}
		if n := e.warnings(); n != 1 {
			t.Errorf("%d warnings, want one", n)
		}
	})

	t.Run("a data_url on another origin is fetched from the base URL; that host is never asked", func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		dataURL, _ := agentFile(t, e, data)
		var hits atomic.Int32
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.NotFound(w, r)
		}))
		defer other.Close()
		wrong := withHost(t, dataURL, other.URL)
		for range 3 {
			rc, _, err := e.c.Download(ctx, wrong)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, data) {
				t.Errorf("got %d bytes", len(got))
			}
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("foreign host asked %d times, want never", n)
		}
	})

	t.Run("a deleted attachment is a permanent 404 without fallback", func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		dataURL, conv := agentFile(t, e, data)
		for _, m := range e.fake.Messages(conv) {
			if len(m.Attachments) > 0 {
				e.fake.DeleteMessage(m.ID)
			}
		}
		before := len(e.fake.Requests())
		_, _, err := e.c.Download(ctx, dataURL)
		if !IsNotFound(err) || !IsPermanent(err) {
			t.Fatalf("err = %v", err)
		}
		if n := len(e.fake.Requests()) - before; n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
		u, _ := url.Parse(dataURL)
		if strings.Contains(err.Error(), u.Path) || strings.Contains(err.Error(), u.Host) {
			t.Errorf("error %q leaks the data_url", err)
		}
	})

	t.Run("both hosts unreachable: retryable, no URL in the error", func(t *testing.T) {
		c := NewClient(closedAddr(t), testInbox, &Options{RequestsPerSecond: -1})
		secret := "/rails/active_storage/blobs/redirect/SIGNEDSECRET/x.pdf"
		_, _, err := c.Download(ctx, closedAddr(t)+secret)
		if !IsRetryable(err) {
			t.Errorf("err = %v, want retryable", err)
		}
		if err != nil && strings.Contains(err.Error(), "SIGNEDSECRET") {
			t.Errorf("error %q leaks the signed id", err)
		}
		if _, _, err := c.Download(ctx, "ftp://x/y"); err == nil || IsRetryable(err) {
			t.Errorf("bad scheme: %v", err)
		}
	})

	t.Run("streams: the first bytes arrive before the server has sent the rest", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "video/mp4")
			w.Header().Set("Content-Disposition", `attachment; filename="clip.mp4"`)
			_, _ = w.Write([]byte("first"))
			w.(http.Flusher).Flush()
			select {
			case <-release:
				_, _ = w.Write([]byte("-rest"))
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		c := NewClient(srv.URL, testInbox, &Options{RequestsPerSecond: -1})
		rc, info, err := c.Download(ctx, srv.URL+"/rails/active_storage/disk/k/clip")
		if err != nil {
			t.Fatal(err)
		}
		if info.Filename != "clip.mp4" || info.ContentType != "video/mp4" || info.Size != -1 {
			t.Errorf("info = %+v", info)
		}
		buf := make([]byte, 5)
		if _, err := io.ReadFull(rc, buf); err != nil || string(buf) != "first" {
			t.Fatalf("first bytes %q, %v", buf, err)
		}
		close(release)
		if rest := readAll(t, rc); string(rest) != "-rest" {
			t.Errorf("rest = %q", rest)
		}
	})

	t.Run("cancel mid-body ends the read", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}))
		defer srv.Close()
		c := NewClient(srv.URL, testInbox, &Options{RequestsPerSecond: -1})
		cctx, cancel := context.WithCancel(ctx)
		rc, _, err := c.Download(cctx, srv.URL+"/f")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		cancel()
		if _, err := io.ReadAll(rc); !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel: %v", err)
		}
	})
}

// zeros is an endless reader of zero bytes that allocates nothing.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkDownload50MB downloads a 50 MB attachment through a redirect and reports how much
// the heap grew while doing so: it must stay near the copy buffer, not the file size.
func BenchmarkDownload50MB(b *testing.B) {
	const size = 50 << 20
	mux := http.NewServeMux()
	mux.HandleFunc("/rails/active_storage/blobs/redirect/k/big.bin", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/rails/active_storage/disk/k/big.bin", http.StatusFound)
	})
	mux.HandleFunc("/rails/active_storage/disk/k/big.bin", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		_, _ = io.CopyN(w, zeros{}, size)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := NewClient(srv.URL, testInbox, &Options{RequestsPerSecond: -1})
	ctx := context.Background()
	buf := make([]byte, 32<<10)

	var peak uint64
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rc, info, err := c.Download(ctx, srv.URL+"/rails/active_storage/blobs/redirect/k/big.bin")
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for {
			m, err := rc.Read(buf)
			n += int64(m)
			if n%(8<<20) < int64(m) { // sample the heap every ~8 MB
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapAlloc)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		rc.Close()
		if n != size || info.Size != size {
			b.Fatalf("read %d of %d", n, info.Size)
		}
	}
	b.StopTimer()
	growth := int64(peak) - int64(base)
	b.ReportMetric(float64(max(growth, 0)), "peak-heap-growth-B")
}

// TestDownloadGuard: downloads reach only allowed origins, on every redirect hop and at the
// address actually dialled, and never more than the cap.
func TestDownloadGuard(t *testing.T) {
	ctx := context.Background()
	data := []byte("%PDF-1.7 invoice")
	// storage is a storage service (S3 stand-in) on another port of 127.0.0.1.
	var storageHits atomic.Int32
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		storageHits.Add(1)
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write(data)
	}))
	defer storage.Close()
	redirectingFile := func(t *testing.T, e *fakeEnv, to string) string {
		t.Helper()
		_, cv := e.session("telegram:1")
		m := e.fake.PostAgentMessage(cv.ID, onechattest.AgentMessage{Attachments: []onechattest.File{
			{Filename: "invoice.pdf", ContentType: "application/pdf", Data: data, RedirectTo: to},
		}})
		return m.Attachments[0].DataURL
	}

	t.Run("a redirect to another port of 127.0.0.1 is refused, permanently, without reaching it", func(t *testing.T) {
		e := newFakeEnv(t, nil, nil)
		before := storageHits.Load()
		_, _, err := e.c.Download(ctx, redirectingFile(t, e, storage.URL+"/bucket/k?X-Amz-Signature=SIGSECRET"))
		if !IsDownloadRefused(err) || !IsPermanent(err) {
			t.Fatalf("err = %v, want a permanent refusal", err)
		}
		if storageHits.Load() != before {
			t.Error("the refused origin was asked")
		}
		if strings.Contains(err.Error(), "SIGSECRET") || strings.Contains(err.Error(), "/bucket/") {
			t.Errorf("error %q leaks the redirect's path or query", err)
		}
	})

	t.Run("a redirect to a listed storage origin is followed", func(t *testing.T) {
		e := newFakeEnv(t, nil, &Options{StorageOrigins: []string{storage.URL}})
		rc, _, err := e.c.Download(ctx, redirectingFile(t, e, storage.URL+"/bucket/k"))
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, rc); !bytes.Equal(got, data) {
			t.Errorf("got %q", got)
		}
	})

	t.Run("a listed origin whose name resolves to a metadata address is refused at the dial", func(t *testing.T) {
		e := newFakeEnv(t, nil, &Options{StorageOrigins: []string{"http://storage.test"}})
		e.c.guard.lookup = func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
		}
		e.c.guard.dialLookedUp = true
		_, _, err := e.c.Download(ctx, redirectingFile(t, e, "http://storage.test/latest/meta-data"))
		if !IsDownloadRefused(err) || !IsPermanent(err) {
			t.Fatalf("err = %v, want a refusal at the dial", err)
		}
	})

	t.Run("a listed origin whose name resolves to a loopback address reaches exactly that address", func(t *testing.T) {
		su, _ := url.Parse(storage.URL)
		e := newFakeEnv(t, nil, &Options{StorageOrigins: []string{"http://storage.test:" + su.Port()}})
		e.c.guard.lookup = func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		e.c.guard.dialLookedUp = true
		rc, _, err := e.c.Download(ctx, redirectingFile(t, e, "http://storage.test:"+su.Port()+"/bucket/k"))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, rc)
	})

	t.Run("over the cap by Content-Length: refused before the body", func(t *testing.T) {
		e := newFakeEnv(t, nil, &Options{MaxDownloadBytes: int64(len(data) - 1)})
		dataURL, _ := agentFile(t, e, data)
		_, _, err := e.c.Download(ctx, dataURL)
		if !IsDownloadRefused(err) || !IsPermanent(err) {
			t.Fatalf("err = %v, want a refusal", err)
		}
	})

	t.Run("over the cap without Content-Length: the read fails at the cap", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for range 4 {
				_, _ = w.Write(bytes.Repeat([]byte("x"), 1000))
				w.(http.Flusher).Flush()
			}
		}))
		defer srv.Close()
		c := NewClient(srv.URL, testInbox, &Options{RequestsPerSecond: -1, MaxDownloadBytes: 2500})
		rc, _, err := c.Download(ctx, srv.URL+"/f")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		n, err := io.Copy(io.Discard, rc)
		if !IsDownloadRefused(err) || n > 2500 {
			t.Errorf("read %d bytes, err %v; want at most 2500 and a refusal", n, err)
		}
		// Exactly at the cap is fine.
		c = NewClient(srv.URL, testInbox, &Options{RequestsPerSecond: -1, MaxDownloadBytes: 4000})
		rc, _, err = c.Download(ctx, srv.URL+"/f")
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, rc); len(got) != 4000 {
			t.Errorf("read %d bytes at the cap", len(got))
		}
	})
}

func TestCheckDialAddr(t *testing.T) {
	exempt := map[netip.AddrPort]struct{}{
		netip.MustParseAddrPort("127.0.0.1:3000"):       {},
		netip.MustParseAddrPort("172.18.0.5:3000"):      {},
		netip.MustParseAddrPort("169.254.169.254:80"):   {},
		netip.MustParseAddrPort("[fe80::1]:80"):         {},
		netip.MustParseAddrPort("[fd00::5]:3000"):       {},
		netip.MustParseAddrPort("100.64.0.7:3000"):      {},
		netip.MustParseAddrPort("[::ffff:10.0.0.9]:80"): {},
	}
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:3000", true},   // the allowed origin's own address
		{"127.0.0.1:3001", false},  // its neighbour port
		{"172.18.0.5:3000", true},  // OneChat as http://rails:3000
		{"172.18.0.6:3000", false}, // a neighbour host
		{"172.18.0.5:5432", false}, // the database beside it
		{"10.0.0.1:80", false},
		{"192.168.1.1:80", false},
		{"100.64.0.7:3000", true},
		{"100.64.0.8:3000", false},
		{"169.254.169.254:80", false}, // link-local: never, even listed
		{"[fe80::1]:80", false},
		{"[fd00::5]:3000", true},
		{"[fd00::6]:3000", false},
		{"[::1]:3000", false},
		{"[::ffff:127.0.0.1]:3000", true}, // v4-mapped is the v4 address
		{"[::ffff:10.0.0.9]:80", false},   // exempt only when mapped the same way: unmapped here
		{"0.0.0.0:3000", false},
		{"224.0.0.1:80", false},
		{"93.184.216.34:443", true}, // public
		{"[2606:2800:220:1::1]:443", true},
	} {
		err := checkDialAddr(tc.addr, exempt)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want allowed %v", tc.addr, err, tc.ok)
		}
		if err != nil && !IsDownloadRefused(err) {
			t.Errorf("%s: err %v is not a refusal", tc.addr, err)
		}
	}
}

func TestParseOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://bucket.s3.amazonaws.com":  "https://bucket.s3.amazonaws.com:443",
		"https://Storage.GoogleAPIs.com/":  "https://storage.googleapis.com:443",
		"http://minio:9000":                "http://minio:9000",
		"https://x.blob.core.windows.net.": "https://x.blob.core.windows.net:443",
	} {
		got, err := ParseOrigin(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", "s3.amazonaws.com", "ftp://x", "https://u:p@x", "https://x/bucket", "https://x?a=1", "https://x#f"} {
		if _, err := ParseOrigin(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
