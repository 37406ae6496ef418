package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthTimeout bounds `bridge health`; container runtimes give a health check a few seconds.
const healthTimeout = 3 * time.Second

// health asks the running bridge's admin listener for /livez (or /readyz with --ready) and
// returns 0 when it answers 200. It is the Dockerfile's HEALTHCHECK, which must work in an
// image without a shell or curl, so it needs nothing but the binary and BRIDGE_ADMIN_ADDR.
func health(args, environ []string, stdout, stderr io.Writer) int {
	path := "/livez"
	for _, a := range args {
		switch a {
		case "--ready", "-ready":
			path = "/readyz"
		default:
			fmt.Fprintf(stderr, "bridge health: unknown argument %q (want --ready or nothing)\n", a)
			return 2
		}
	}
	addr := "127.0.0.1:9090"
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "BRIDGE_ADMIN_ADDR="); ok {
			addr = v
		}
	}
	if addr == "" {
		fmt.Fprintln(stderr, "bridge health: BRIDGE_ADMIN_ADDR is empty, so the admin listener is off and there is nothing to ask")
		return 1
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "bridge health: BRIDGE_ADMIN_ADDR: must be host:port, got %q\n", addr)
		return 1
	}
	// A listener on every interface is reached through loopback.
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "bridge health: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "bridge health: %s not answering: %v\n", path, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "bridge health: %s answered %d: %s\n", path, resp.StatusCode, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintf(stdout, "%s %s", path, body)
	return 0
}
