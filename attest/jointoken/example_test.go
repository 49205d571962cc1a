package jointoken_test

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// An operator generates a token on the server and gives it to a node, whose
// agent presents it once.
func Example() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	store := memstore.New(memstore.Config{}) // or sqlstore, shared by servers

	// Server side: a token admitting one node for ten minutes.
	token, rec, err := jointoken.Generate(ctx, store, jointoken.Params{})
	if err != nil {
		fmt.Println(err)
		return
	}
	server, err := jointoken.NewServer(jointoken.ServerConfig{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Node side: the agent sends the token as its payload; the server
	// would relay any challenge to client.Respond (join tokens need none).
	client := jointoken.NewClient(token)
	challenge := func(ctx context.Context, c []byte) ([]byte, error) { return client.Respond(ctx, c) }
	payload, err := client.Payload(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}

	res, err := server.Attest(ctx, td, payload, challenge)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.Replace(res.AgentID.String(), rec.ID, "<token ID>", 1))
	fmt.Println("can re-attest:", res.CanReattest)

	// The token is spent.
	_, err = server.Attest(ctx, td, payload, challenge)
	fmt.Println("second use rejected:", errors.Is(err, attest.ErrNodeRejected))
	// Output:
	// spiffe://example.org/spiffekit/agent/join_token/<token ID>
	// can re-attest: false
	// second use rejected: true
}
