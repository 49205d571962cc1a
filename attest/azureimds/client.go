package azureimds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/azuremeta"
)

// DefaultTimeout bounds the fetch of a document when
// [ClientConfig].Timeout is zero.
const DefaultTimeout = 10 * time.Second

// attestedPath and attestedAPIVersion: the attested document endpoint of
// the instance metadata service, at the version SPIRE asks for.
const (
	attestedPath       = "/metadata/attested/document"
	attestedAPIVersion = "2025-04-07"
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// TenantDomain names the VM's tenant as the server's allow-list does:
	// its tenant ID or domain (SPIRE's tenant_domain). Required.
	TenantDomain string

	// Endpoint is the instance metadata service's URL. Empty means
	// http://169.254.169.254.
	Endpoint string

	// Timeout bounds one fetch of a document. Zero means [DefaultTimeout].
	Timeout time.Duration
}

// Client is the agent side of azure_imds attestation: it answers the
// server's nonce with the attested document the instance metadata service
// signs for that nonce. It implements [attest.NodeAttestorClient] and is
// safe for concurrent use.
type Client struct {
	imds    *azuremeta.Client
	tenant  string
	timeout time.Duration
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client of c. It makes no request.
func NewClient(c ClientConfig) (*Client, error) {
	if !tenantRE.MatchString(c.TenantDomain) {
		return nil, fmt.Errorf("azureimds: tenant domain %q: want a tenant ID or domain in lower case", c.TenantDomain)
	}
	if c.Timeout < 0 {
		return nil, errors.New("azureimds: negative timeout")
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	imds, err := azuremeta.New(c.Endpoint, timeout)
	if err != nil {
		return nil, fmt.Errorf("azureimds: %w", err)
	}
	return &Client{imds: imds, tenant: c.TenantDomain, timeout: timeout}, nil
}

// Type returns "azure_imds".
func (c *Client) Type() string { return Type }

// Payload returns the first message, which says nothing: the server
// answers it with a nonce.
func (c *Client) Payload(context.Context) ([]byte, error) { return []byte("{}"), nil }

// Respond fetches the attested document for the server's nonce and returns
// it with the tenant's name.
func (c *Client) Respond(ctx context.Context, challenge []byte) ([]byte, error) {
	nonce := string(challenge)
	if !nonceRE.MatchString(nonce) {
		return nil, errors.New("azureimds: the server's nonce is not 1 to 64 letters and digits")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	body, err := c.imds.Get(ctx, attestedPath, url.Values{"api-version": {attestedAPIVersion}, "nonce": {nonce}})
	if err != nil {
		return nil, fmt.Errorf("azureimds: fetching the attested document from the instance metadata service: %w", err)
	}
	var doc Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("azureimds: the instance metadata service's attested document is not JSON: %w", err)
	}
	switch {
	case doc.Encoding != "pkcs7":
		return nil, fmt.Errorf("azureimds: the attested document's encoding is %q, want pkcs7", azuremeta.Truncate(doc.Encoding))
	case doc.Signature == "":
		return nil, errors.New("azureimds: the attested document has no signature")
	case len(doc.Signature) > MaxSignatureSize:
		return nil, fmt.Errorf("azureimds: the attested document's signature is larger than %d bytes", MaxSignatureSize)
	}
	return json.Marshal(Response{Document: doc, Metadata: Metadata{AgentDomain: c.tenant}})
}
