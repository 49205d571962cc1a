package gcpiit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"cloud.google.com/go/compute/metadata"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/bodylimit"
)

// DefaultTimeout bounds the fetch of a token when [ClientConfig].Timeout
// is zero.
const DefaultTimeout = 10 * time.Second

// maxResponse bounds each response of the metadata server.
const maxResponse = MaxTokenSize

// serviceAccountRE: "default", or a service account's e-mail.
var serviceAccountRE = regexp.MustCompile(`^(default|[a-z0-9][a-z0-9._%+-]*@[a-z0-9.-]+)$`)

// hostRE: a host name or IPv4 address, or a bracketed IPv6 one, and an
// optional port.
var hostRE = regexp.MustCompile(`^([a-zA-Z0-9.-]+|\[[0-9a-fA-F:.]+\])(:[0-9]{1,5})?$`)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// Host is the metadata server's host and optional port, such as
	// "metadata.google.internal" (SPIRE's identity_token_host). Empty
	// means the metadata library's choice: the GCE_METADATA_HOST
	// variable, or 169.254.169.254.
	Host string

	// ServiceAccount is the service account whose identity endpoint
	// issues the token (SPIRE's service_account): "default" (when empty)
	// or an e-mail.
	ServiceAccount string

	// Audience is the audience the token is asked for; it must be the
	// server's. Empty means [DefaultAudience].
	Audience string

	// Timeout bounds one fetch of a token, the metadata library's retries
	// included. Zero means [DefaultTimeout].
	Timeout time.Duration
}

// Client is the agent side of gcp_iit attestation: at each attestation it
// asks the Compute Engine metadata server for an instance identity token
// of the full format, for the server's audience, with
// cloud.google.com/go/compute/metadata. It implements
// [attest.NodeAttestorClient] and is safe for concurrent use.
type Client struct {
	md      *metadata.Client
	suffix  string
	timeout time.Duration
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client of c. It makes no request.
func NewClient(c ClientConfig) (*Client, error) {
	if c.Timeout < 0 {
		return nil, errors.New("gcpiit: negative timeout")
	}
	if c.Host != "" && !hostRE.MatchString(c.Host) {
		return nil, fmt.Errorf("gcpiit: metadata host %q: want a host name or address and an optional port, no scheme", c.Host)
	}
	sa := c.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	if !serviceAccountRE.MatchString(sa) || len(sa) > 256 {
		return nil, fmt.Errorf("gcpiit: service account %q: want \"default\" or an e-mail", c.ServiceAccount)
	}
	audience := c.Audience
	if audience == "" {
		audience = DefaultAudience
	}
	if len(audience) > 1024 || strings.ContainsAny(audience, "\x00\r\n") {
		return nil, errors.New("gcpiit: the audience is longer than 1,024 bytes or has a control character")
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// Never through a proxy: the server is on the instance's link, and a
	// proxy could answer for it. Every response is bounded.
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: timeout,
		DisableKeepAlives:     true,
	}
	q := url.Values{"audience": {audience}, "format": {"full"}}
	return &Client{
		md: metadata.NewWithOptions(&metadata.Options{
			Client: &http.Client{Transport: &metadataTransport{rt: tr, host: c.Host}},
		}),
		suffix:  "instance/service-accounts/" + sa + "/identity?" + q.Encode(),
		timeout: timeout,
	}, nil
}

// Type returns "gcp_iit".
func (c *Client) Type() string { return Type }

// Payload fetches an identity token of the full format for the server's
// audience, and returns it as the agent's message.
func (c *Client) Payload(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tok, err := c.md.GetWithContext(ctx, c.suffix)
	if err != nil {
		return nil, fmt.Errorf("gcpiit: fetching the instance identity token from the metadata server: %w", err)
	}
	tok = strings.TrimSpace(tok)
	switch {
	case tok == "":
		return nil, errors.New("gcpiit: the metadata server's identity token is empty")
	case strings.Count(tok, ".") != 2:
		return nil, errors.New("gcpiit: the metadata server's identity token is not a JWT")
	}
	return []byte(tok), nil
}

// Respond fails: gcp_iit sends no challenge.
func (c *Client) Respond(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("gcpiit: the server sent a challenge, but gcp_iit has none")
}

// metadataTransport sends the metadata library's requests to host, if
// set, and fails the reading of a response body longer than maxResponse.
type metadataTransport struct {
	rt   http.RoundTripper
	host string
}

func (t *metadataTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.host != "" {
		req = req.Clone(req.Context())
		req.URL.Host = t.host
		req.Host = t.host
	}
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if err := bodylimit.Limit(resp, maxResponse, errTooLarge); err != nil {
		return nil, err
	}
	return resp, nil
}

var errTooLarge = fmt.Errorf("gcpiit: a response of the metadata server is larger than %d bytes", maxResponse)
