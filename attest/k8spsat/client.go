package k8spsat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spiffekit/spiffekit/attest"
)

// DefaultTokenPath is where [Client] reads the projected service account
// token when [ClientConfig].TokenPath is empty: the file of a projected
// volume named "spiffekit-agent" mounted at /var/run/secrets/tokens.
const DefaultTokenPath = "/var/run/secrets/tokens/spiffekit-agent"

// maxToken bounds the token file the client reads, so that the payload
// stays below attest.MaxNodePayload with room for the cluster name.
const maxToken = attest.MaxNodePayload - 1024

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// Cluster names the cluster the node belongs to, as the servers'
	// configuration names it. Required: 1 to 253 letters, digits, '-',
	// '_' and '.'.
	Cluster string

	// TokenPath is the file holding the agent pod's projected service
	// account token. Empty means [DefaultTokenPath]. The file is read
	// again for every attestation: the kubelet rotates the token.
	TokenPath string
}

// Client is the agent side of k8s_psat attestation. It implements
// [attest.NodeAttestorClient] and is safe for concurrent use.
type Client struct {
	cluster, tokenPath string
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client presenting the token at c.TokenPath for
// cluster c.Cluster. It fails if the cluster name is missing or malformed;
// the token file is read by [Client.Payload].
func NewClient(c ClientConfig) (*Client, error) {
	if err := ValidateClusterName(c.Cluster); err != nil {
		return nil, err
	}
	path := c.TokenPath
	if path == "" {
		path = DefaultTokenPath
	}
	return &Client{cluster: c.Cluster, tokenPath: path}, nil
}

// Type returns "k8s_psat".
func (c *Client) Type() string { return Type }

// Payload reads the token file and returns the cluster name and the token
// as the JSON object {"cluster": ..., "token": ...} (SPIRE's k8s_psat
// payload). It fails if the file cannot be read, is empty or is larger
// than 63 KiB; the error names the file, never its content.
func (c *Client) Payload(context.Context) ([]byte, error) {
	token, err := readToken(c.tokenPath)
	if err != nil {
		return nil, fmt.Errorf("k8spsat: %w", err)
	}
	return Payload{Cluster: c.cluster, Token: token}.Marshal(), nil
}

// Respond always fails: k8s_psat attestation has no challenges, so a
// server that sends one is not a k8s_psat server.
func (c *Client) Respond(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("k8spsat: unexpected challenge: k8s_psat attestation has none")
}

// readToken reads the token at path, without surrounding white space.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading the service account token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxToken+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("reading the service account token %s: %w", path, err)
	case len(b) > maxToken:
		return "", fmt.Errorf("service account token %s is larger than %d bytes", path, maxToken)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("service account token %s is empty", path)
	}
	return token, nil
}
