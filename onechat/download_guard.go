package onechat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultMaxDownloadBytes is the default cap of one attachment download (100 MB).
const DefaultMaxDownloadBytes = 100 << 20

// DownloadRefusedError says the client would not download an attachment: its URL (or a
// redirect's) is not on an allowed origin, the address it resolves to is loopback, private or
// link-local without being an allowed origin's own, or it is larger than the cap. Retrying
// cannot help, so Classify calls it permanent. Reason never contains the URL's path or query.
type DownloadRefusedError struct {
	Reason string
}

func (e *DownloadRefusedError) Error() string { return "download refused: " + e.Reason }

// IsDownloadRefused reports whether err is a *DownloadRefusedError.
func IsDownloadRefused(err error) bool {
	var dr *DownloadRefusedError
	return errors.As(err, &dr)
}

// origin is a URL's scheme, host and port, the port always explicit, the host lowercase:
// "https://chat.example.com:443".
type origin struct {
	scheme, host, port string
}

func (o origin) String() string { return o.scheme + "://" + net.JoinHostPort(o.host, o.port) }

// urlOrigin returns u's origin; ok is false for a URL that is not absolute http(s).
func urlOrigin(u *url.URL) (o origin, ok bool) {
	if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
		return origin{}, false
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return origin{scheme: u.Scheme, host: strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), port: port}, true
}

// ParseOrigin checks one entry of Options.StorageOrigins (an ONECHAT_STORAGE_ORIGINS item) and
// returns it normalised. An origin is scheme://host[:port] and nothing else: no credentials,
// path, query or fragment, so a list entry cannot widen into "any path of any host".
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.User != nil {
		return "", errors.New("must not contain credentials")
	}
	o, ok := urlOrigin(u)
	if !ok {
		return "", errors.New("must be an http:// or https:// origin such as https://bucket.s3.amazonaws.com")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("must be an origin only (scheme://host[:port]), without a path or query")
	}
	return o.String(), nil
}

// downloadGuard decides where downloads may go. Two checks, because a URL's host says nothing
// about the address it reaches:
//   - by URL, before every request and on every redirect hop: only the allowed origins (the
//     base URL's and Options.StorageOrigins);
//   - by address, when the connection is made (net.Dialer.Control sees the socket address
//     actually dialled, after DNS, so a name that resolves differently the second time, DNS
//     rebinding, cannot get past it): loopback and private addresses are refused unless they
//     are an allowed origin's own address and port, resolved for that very dial; link-local
//     (cloud metadata), unspecified and multicast addresses are always refused.
type downloadGuard struct {
	origins map[origin]struct{}
	// lookup resolves an allowed origin's host name to find its exempt addresses.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// dialLookedUp makes a dial to an allowed origin go to the first address lookup found
	// instead of letting the dialer resolve the name again: tests set it together with a
	// lookup that knows names the system does not.
	dialLookedUp bool
}

func newDownloadGuard(base string, storage []string) *downloadGuard {
	g := &downloadGuard{
		origins: map[origin]struct{}{},
		lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		},
	}
	for _, s := range append([]string{base}, storage...) {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil {
			if o, ok := urlOrigin(u); ok {
				g.origins[o] = struct{}{}
			}
		}
	}
	return g
}

// allowed reports whether u is on an allowed origin.
func (g *downloadGuard) allowed(u *url.URL) bool {
	o, ok := urlOrigin(u)
	if !ok {
		return false
	}
	_, ok = g.origins[o]
	return ok
}

// refuseURL is the error for a URL on an origin that is not allowed. The origin (scheme, host,
// port) is named, never the path or query, which may carry a signed id or a presigned
// storage credential.
func refuseURL(u *url.URL, hop string) error {
	o, ok := urlOrigin(u)
	if !ok {
		return &DownloadRefusedError{Reason: hop + " is not an http(s) URL"}
	}
	return &DownloadRefusedError{Reason: fmt.Sprintf("%s goes to %s, which is neither ONECHAT_BASE_URL's origin nor in ONECHAT_STORAGE_ORIGINS", hop, o)}
}

// dialContext dials addr for a download. Every address it connects to passes control; the
// addresses an allowed origin's host resolves to right now are its exemption. The dialer
// resolves the name itself (keeping its fallback between IPv6 and IPv4); Control sees each
// address it actually connects to.
func (g *downloadGuard) dialContext(dialer *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("bad port in %q", addr)
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		exempt := map[netip.AddrPort]struct{}{}
		if g.isOriginHost(host, portStr) {
			var ips []netip.Addr
			if ip, err := netip.ParseAddr(host); err == nil {
				ips = []netip.Addr{ip}
			} else if ips, err = g.lookup(ctx, host); err != nil {
				return nil, err
			}
			for _, ip := range ips {
				exempt[netip.AddrPortFrom(ip.Unmap(), uint16(port))] = struct{}{}
			}
			if g.dialLookedUp {
				if len(ips) == 0 {
					return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
				}
				addr = netip.AddrPortFrom(ips[0], uint16(port)).String()
			}
		}
		d := *dialer
		d.Control = func(_, address string, _ syscall.RawConn) error { return checkDialAddr(address, exempt) }
		return d.DialContext(ctx, network, addr)
	}
}

// isOriginHost reports whether host:port is an allowed origin's host and port.
func (g *downloadGuard) isOriginHost(host, port string) bool {
	for o := range g.origins {
		if o.host == strings.Trim(host, "[]") && o.port == port {
			return true
		}
	}
	return false
}

// checkDialAddr is the dial-time check of the socket address (ip:port) about to be connected.
func checkDialAddr(address string, exempt map[netip.AddrPort]struct{}) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &DownloadRefusedError{Reason: "unparsable address " + address}
	}
	ip := ap.Addr().Unmap()
	switch {
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast(),
		ip.IsMulticast(), ip.IsUnspecified():
		return &DownloadRefusedError{Reason: fmt.Sprintf("address %s is link-local, multicast or unspecified", ip)}
	case ip.IsLoopback(), ip.IsPrivate(), sharedAddressSpace.Contains(ip):
		if _, ok := exempt[netip.AddrPortFrom(ip, ap.Port())]; ok {
			return nil
		}
		return &DownloadRefusedError{Reason: fmt.Sprintf("address %s is loopback or private and not an allowed origin's own address", netip.AddrPortFrom(ip, ap.Port()))}
	}
	return nil
}

// sharedAddressSpace is 100.64.0.0/10 (RFC 6598, carrier-grade NAT), internal like the
// private ranges although netip does not count it as private.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// downloadClient returns the HTTP client downloads use: the API client's transport settings
// (TLS roots, idle connections), with the guarded dialer and without a proxy (a proxy would
// make the dial-time check see only the proxy's address). Redirects are checked per hop by
// fetch; the body is bounded by the caller's ctx, not a client timeout.
func downloadClient(api *http.Client, g *downloadGuard) *http.Client {
	var tr *http.Transport
	if t, ok := api.Transport.(*http.Transport); ok && t != nil {
		tr = t.Clone()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.Proxy = nil
	tr.DialContext = g.dialContext(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	tr.DialTLSContext = nil
	return &http.Client{Transport: tr, Jar: api.Jar}
}
