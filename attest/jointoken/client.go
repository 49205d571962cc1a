package jointoken

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffekit/spiffekit/attest"
)

// Client is the agent side of join token attestation. It implements
// [attest.NodeAttestorClient] and is safe for concurrent use.
type Client struct {
	token string
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client that presents token. Leading and trailing white
// space, as a token read from a file or a terminal carries, is removed. A
// malformed token is reported by [Client.Payload].
func NewClient(token string) *Client {
	return &Client{token: strings.TrimSpace(token)}
}

// Type returns "join_token".
func (c *Client) Type() string { return Type }

// Payload returns the token. It fails, without sending anything, if the
// token is not of the form "<id>.<secret>" that [Generate] prints.
func (c *Client) Payload(context.Context) ([]byte, error) {
	if _, _, err := parse(c.token); err != nil {
		return nil, fmt.Errorf("jointoken: %w", err)
	}
	return []byte(c.token), nil
}

// Respond always fails: join token attestation has no challenges, so a
// server that sends one is not a join token server.
func (c *Client) Respond(context.Context, []byte) ([]byte, error) {
	return nil, errors.New("jointoken: unexpected challenge: join token attestation has none")
}
