package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"

	"github.com/spiffekit/spiffekit/ca/upstream/nested"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// nestedKey is where the configuration file holds the upstream server of a
// nested server, with the keys of SPIRE's UpstreamAuthority "spire".
const nestedKey = "upstream_authority.spire"

const nestedHelp = `the upstream CA is another server of the trust domain, SPIRE's UpstreamAuthority "spire":
{"server_address": "<host>", "server_port": "<port>", "workload_api_socket": "<path of the socket of an agent
attested to that server>"}; the server is a workload of that agent, with a downstream entry (see README.md)`

// nestedConfig is upstream_authority.spire of the configuration file.
type nestedConfig struct {
	ServerAddress     string    `json:"server_address"`
	ServerPort        portValue `json:"server_port"`
	WorkloadAPISocket string    `json:"workload_api_socket"`
}

// portValue is a port given as SPIRE gives it, a string ("8081"), or as a
// number.
type portValue string

// UnmarshalJSON takes a string or a number.
func (p *portValue) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*p = portValue(n.String())
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("server_port: want a port number or a string holding one")
	}
	*p = portValue(s)
	return nil
}

// checkNested refuses, before anything is opened, an
// upstream_authority.spire that cannot work, or an upstream CA given
// twice.
func checkNested(rc *runConfig) error {
	c := rc.Nested
	if c == nil {
		return nil
	}
	switch {
	case rc.UpstreamCACert != "" || rc.UpstreamCAKey != "" || rc.Vault != nil:
		return fmt.Errorf("%s and another upstream authority: one upstream authority only", nestedKey)
	case c.ServerAddress == "":
		return fmt.Errorf("%s: server_address is required", nestedKey)
	case c.WorkloadAPISocket == "":
		return fmt.Errorf("%s: workload_api_socket is required", nestedKey)
	}
	if port, err := strconv.ParseUint(string(c.ServerPort), 10, 16); err != nil || port == 0 {
		return fmt.Errorf("%s: server_port %q is not a port number", nestedKey, string(c.ServerPort))
	}
	return nil
}

// workloadAPIAddr is the Workload API address of a socket path, or the
// address itself when it names its scheme.
func workloadAPIAddr(socket string) string {
	if strings.Contains(socket, "://") {
		return socket
	}
	return "unix://" + socket
}

// startNested connects to the Workload API of the agent of
// upstream_authority.spire and waits for the server's X509-SVID, then
// returns the upstream authority and the function that closes both. It
// waits until ctx is done.
func startNested(ctx context.Context, c *nestedConfig, td spiffeid.TrustDomain, log *slog.Logger) (*nested.Authority, func(), error) {
	addr := workloadAPIAddr(c.WorkloadAPISocket)
	log.Info("waiting for this server's X509-SVID from the agent's Workload API", "addr", addr)
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: the Workload API at %s: %w", nestedKey, addr, err)
	}
	svid, err := src.GetX509SVID()
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("%s: %w", nestedKey, err)
	}
	log.Info("this server's X509-SVID", "spiffe_id", svid.ID)
	up, err := nested.New(nested.Config{
		ServerAddress: net.JoinHostPort(c.ServerAddress, string(c.ServerPort)),
		TrustDomain:   td,
		SVIDSource:    src,
		BundleSource:  src,
		Logger:        log.With("component", "upstream_authority"),
	})
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("%s: %w", nestedKey, err) // nested says "nested: "
	}
	return up, func() { up.Close(); src.Close() }, nil
}
