package kit

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// pipePrefix begins the path of every Windows named pipe.
const pipePrefix = `\\.\pipe\`

// endpointAddr is a Workload Endpoint address read per WE rule 8, or a
// Windows named pipe.
type endpointAddr struct {
	network string // "unix", "tcp" or "npipe"
	addr    string // the socket path, IP:port, or the pipe's path (\\.\pipe\NAME)
	ip      netip.Addr
}

// grpcTarget is the address as a gRPC target.
func (a endpointAddr) grpcTarget() string {
	if a.network == "unix" {
		return "unix://" + a.addr
	}
	return "passthrough:///" + a.addr
}

// dialPipe connects to a Windows named pipe by its path; nil where the
// platform has none (see pipe_windows.go).
var dialPipe func(ctx context.Context, path string) (net.Conn, error)

// newClient returns a client of the endpoint (which connects lazily).
// A named pipe is refused on a platform without them.
func (a endpointAddr) newClient(raw string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if a.network == "npipe" {
		if dialPipe == nil {
			return nil, fmt.Errorf("kit: endpoint address %q: npipe: names a Windows named pipe, which %s does not have: give a unix:// or tcp:// address", raw, runtime.GOOS)
		}
		opts = append(opts, grpc.WithContextDialer(dialPipe))
	}
	conn, err := grpc.NewClient(a.grpcTarget(), opts...)
	if err != nil {
		return nil, fmt.Errorf("kit: %s: %w", raw, err)
	}
	return conn, nil
}

// parseEndpointAddr reads a Workload Endpoint address: unix:///PATH (or
// unix:/PATH), or tcp://IP:PORT, and nothing else (WE rule 8); or, as
// go-spiffe and SPIRE read it on Windows, npipe:NAME for the named pipe
// \\.\pipe\NAME (a "/" in NAME read as "\").
func parseEndpointAddr(s string) (endpointAddr, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: %w (WE rule 8)", s, err)
	}
	if strings.EqualFold(u.Scheme, "npipe") {
		return parsePipeAddr(s, u)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.User != nil || u.Opaque != "" {
		return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: a query, fragment, user or opaque part is not allowed (WE rule 8)", s)
	}
	switch strings.ToLower(u.Scheme) {
	case "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: unix addresses take an absolute path and no authority: unix:///PATH (WE rule 8)", s)
		}
		return endpointAddr{network: "unix", addr: u.Path}, nil
	case "tcp":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil {
			return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: %w (WE rule 8)", s, err)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: the host must be an IP address (WE rule 8)", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: port %q (WE rule 8)", s, port)
		}
		if u.Path != "" {
			return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: a path is not allowed (WE rule 8)", s)
		}
		return endpointAddr{network: "tcp", addr: net.JoinHostPort(ip.String(), port), ip: ip}, nil
	}
	return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: the scheme must be unix or tcp (WE rule 8), or npipe on Windows", s)
}

// parsePipeAddr reads npipe:NAME, as go-spiffe does: an opaque name, no
// authority, query or fragment. The kit refuses more than go-spiffe: an
// empty, "." or ".." element of the name, and a NUL.
func parsePipeAddr(s string, u *url.URL) (endpointAddr, error) {
	if u.Opaque == "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: a named pipe address is npipe:NAME, with no authority, query or fragment", s)
	}
	name := strings.ReplaceAll(u.Opaque, "/", `\`)
	for _, elem := range strings.Split(name, `\`) {
		if elem == "" || elem == "." || elem == ".." || strings.ContainsRune(elem, 0) {
			return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: pipe name %q has an empty, \".\" or \"..\" element, or a NUL", s, u.Opaque)
		}
	}
	return endpointAddr{network: "npipe", addr: pipePrefix + name}, nil
}
