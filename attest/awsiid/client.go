package awsiid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/bodylimit"
)

// DefaultTimeout bounds the fetch of a payload when
// [ClientConfig].Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxResponse bounds each response of the metadata service, the token's
// included.
const maxResponse = 16 << 10

// Paths of the identity document and its signatures, below /latest/dynamic.
const (
	documentPath  = "instance-identity/document"
	signaturePath = "instance-identity/signature"
	rsa2048Path   = "instance-identity/rsa2048"
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// Endpoint is the instance metadata service's URL, such as
	// "http://169.254.169.254" (SPIRE's ec2_metadata_endpoint). Empty means
	// the SDK's choice: the AWS_EC2_METADATA_SERVICE_ENDPOINT variable, or
	// http://169.254.169.254.
	Endpoint string

	// Timeout bounds one fetch of the document and its signatures, token
	// included. Zero means [DefaultTimeout].
	Timeout time.Duration
}

// Client is the agent side of aws_iid attestation: it fetches the
// instance identity document and its signatures from the instance metadata
// service with IMDSv2 (a session token first, never the tokenless IMDSv1),
// at each attestation. It implements [attest.NodeAttestorClient] and is
// safe for concurrent use.
type Client struct {
	imds    *imds.Client
	timeout time.Duration
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client of c. It makes no request.
func NewClient(c ClientConfig) (*Client, error) {
	if c.Timeout < 0 {
		return nil, errors.New("awsiid: negative timeout")
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("awsiid: metadata endpoint %q: want an http:// or https:// URL", c.Endpoint)
		}
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	// Never through a proxy: the service is on the instance's link, and a
	// proxy could answer for it. Every response is bounded.
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: timeout,
		// Four requests an attestation, which is rare: no connection is
		// kept open between them.
		DisableKeepAlives: true,
	}
	client := imds.New(imds.Options{
		Endpoint:       c.Endpoint,
		HTTPClient:     &http.Client{Transport: limitedTransport{tr}},
		EnableFallback: aws.FalseTernary,
	})
	return &Client{imds: client, timeout: timeout}, nil
}

// Type returns "aws_iid".
func (c *Client) Type() string { return Type }

// Payload fetches the document, its RSA-SHA256 signature and its PKCS #7
// RSA-2048 signature, and returns them as the agent's message.
func (c *Client) Payload(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var p Payload
	for _, f := range []struct {
		path string
		into *string
	}{
		{documentPath, &p.Document},
		{signaturePath, &p.Signature},
		{rsa2048Path, &p.RSA2048},
	} {
		v, err := c.get(ctx, f.path)
		if err != nil {
			return nil, err
		}
		*f.into = v
	}
	if len(p.Document) > MaxDocumentSize || len(p.Signature) > MaxSignatureSize || len(p.RSA2048) > MaxSignatureSize {
		return nil, errors.New("awsiid: the metadata service's document or a signature is too large")
	}
	return marshalPayload(p)
}

// get returns the dynamic data at path.
func (c *Client) get(ctx context.Context, path string) (string, error) {
	out, err := c.imds.GetDynamicData(ctx, &imds.GetDynamicDataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("awsiid: fetching %s from the instance metadata service: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return "", fmt.Errorf("awsiid: reading %s from the instance metadata service: %w", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("awsiid: the instance metadata service's %s is empty", path)
	}
	return s, nil
}

// Respond fails: aws_iid sends no challenge.
func (c *Client) Respond(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("awsiid: the server sent a challenge, but aws_iid has none")
}

// limitedTransport fails the reading of a response body longer than
// maxResponse.
type limitedTransport struct{ rt http.RoundTripper }

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if err := bodylimit.Limit(resp, maxResponse, errTooLarge); err != nil {
		return nil, err
	}
	return resp, nil
}

var errTooLarge = fmt.Errorf("awsiid: a response of the instance metadata service is larger than %d bytes", maxResponse)
