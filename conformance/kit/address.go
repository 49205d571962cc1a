package kit

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// endpointAddr is a Workload Endpoint address read per WE rule 8.
type endpointAddr struct {
	network string // "unix" or "tcp"
	addr    string // the socket path, or IP:port
	ip      netip.Addr
}

// grpcTarget is the address as a gRPC target.
func (a endpointAddr) grpcTarget() string {
	if a.network == "unix" {
		return "unix://" + a.addr
	}
	return "passthrough:///" + a.addr
}

// parseEndpointAddr reads a Workload Endpoint address: unix:///PATH (or
// unix:/PATH), or tcp://IP:PORT, and nothing else (WE rule 8).
func parseEndpointAddr(s string) (endpointAddr, error) {
	u, err := url.Parse(s)
	if err != nil {
		return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: %w (WE rule 8)", s, err)
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
	return endpointAddr{}, fmt.Errorf("kit: endpoint address %q: the scheme must be unix or tcp (WE rule 8)", s)
}
