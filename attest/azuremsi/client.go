package azuremsi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/internal/azuremeta"
)

// DefaultTimeout bounds the fetch of a token when [ClientConfig].Timeout
// is zero.
const DefaultTimeout = 10 * time.Second

// tokenPath and apiVersion: the managed identity endpoint of the instance
// metadata service.
const (
	tokenPath       = "/metadata/identity/oauth2/token"
	tokenAPIVersion = "2018-02-01"
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// ResourceID is the resource to ask a token for, the token's audience
	// (SPIRE's resource_id). It must be the server's for the tenant. Empty
	// means [DefaultResourceID].
	ResourceID string

	// ClientID, if set, picks the user-assigned identity of that client ID
	// when the VM has several; empty means the VM's system-assigned
	// identity, or its only one.
	ClientID string

	// Endpoint is the instance metadata service's URL. Empty means
	// http://169.254.169.254.
	Endpoint string

	// Timeout bounds one fetch of a token. Zero means [DefaultTimeout].
	Timeout time.Duration
}

// Client is the agent side of azure_msi attestation: it asks the instance
// metadata service for a managed identity's access token for the
// configured resource at each attestation. It implements
// [attest.NodeAttestorClient] and is safe for concurrent use.
type Client struct {
	imds     *azuremeta.Client
	resource string
	clientID string
	timeout  time.Duration
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client of c. It makes no request.
func NewClient(c ClientConfig) (*Client, error) {
	if c.Timeout < 0 {
		return nil, errors.New("azuremsi: negative timeout")
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	imds, err := azuremeta.New(c.Endpoint, timeout)
	if err != nil {
		return nil, fmt.Errorf("azuremsi: %w", err)
	}
	resource := c.ResourceID
	if resource == "" {
		resource = DefaultResourceID
	}
	return &Client{imds: imds, resource: resource, clientID: c.ClientID, timeout: timeout}, nil
}

// Type returns "azure_msi".
func (c *Client) Type() string { return Type }

// Payload fetches a token and returns it as the agent's message.
func (c *Client) Payload(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	q := url.Values{"api-version": {tokenAPIVersion}, "resource": {c.resource}}
	if c.clientID != "" {
		q.Set("client_id", c.clientID)
	}
	body, err := c.imds.Get(ctx, tokenPath, q)
	if err != nil {
		return nil, fmt.Errorf("azuremsi: fetching a token for %s from the instance metadata service: %w", c.resource, err)
	}
	var r struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("azuremsi: the instance metadata service's token response is not JSON: %w", err)
	}
	switch {
	case r.AccessToken == "":
		return nil, errors.New("azuremsi: the instance metadata service's token response has no access token")
	case len(r.AccessToken) > MaxTokenSize:
		return nil, fmt.Errorf("azuremsi: the instance metadata service's token is larger than %d bytes", MaxTokenSize)
	case strings.Count(r.AccessToken, ".") != 2:
		return nil, errors.New("azuremsi: the instance metadata service's token is not a JWT")
	}
	return marshalPayload(Payload{Token: r.AccessToken})
}

// Respond fails: azure_msi sends no challenge.
func (c *Client) Respond(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("azuremsi: the server sent a challenge, but azure_msi has none")
}
