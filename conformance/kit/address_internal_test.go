package kit

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseEndpointAddr feeds any string to the reader of Workload
// Endpoint addresses: an error, or an address that keeps WE rule 8 (or
// names a named pipe by a well-formed path).
func FuzzParseEndpointAddr(f *testing.F) {
	for _, s := range []string{"unix:///run/spire/agent.sock", "unix:/run/a.sock", "UNIX:///x", "tcp://127.0.0.1:8000", "tcp://[::1]:8000", "tcp://localhost:1", "unix://host/x", "%zz",
		"npipe:spire-agent/public/api", `npipe:spire-agent\public\api`, "npipe:", "npipe://x", "npipe:a/../b", "NPIPE:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := parseEndpointAddr(s)
		if err != nil {
			return
		}
		switch a.network {
		case "unix":
			if !strings.HasPrefix(a.addr, "/") || !strings.HasPrefix(a.grpcTarget(), "unix:///") {
				t.Fatalf("%q: unix address %q", s, a.addr)
			}
		case "tcp":
			ap, err := netip.ParseAddrPort(a.addr)
			if err != nil || ap.Port() == 0 || ap.Addr() != a.ip {
				t.Fatalf("%q: tcp address %q (%v)", s, a.addr, err)
			}
		case "npipe":
			name := strings.TrimPrefix(a.addr, pipePrefix)
			if name == a.addr || name == "" || strings.Contains(name, "/") || strings.Contains(name, `\\`) ||
				strings.HasSuffix(name, `\`) || a.grpcTarget() != "passthrough:///"+a.addr {
				t.Fatalf("%q: pipe path %q", s, a.addr)
			}
			for _, elem := range strings.Split(name, `\`) {
				if elem == "." || elem == ".." {
					t.Fatalf("%q: pipe path %q", s, a.addr)
				}
			}
		default:
			t.Fatalf("%q: network %q", s, a.network)
		}
	})
}
