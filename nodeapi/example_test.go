package nodeapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// An issuing server and an agent in one process: the agent attests with a
// join token, learns its entry from the stream, and has the server sign an
// X509-SVID for it.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	td := spiffeid.RequireTrustDomainFromString("example.org")

	// The server: a CA, a registry, a join-token attestor, on loopback.
	ca, _ := rotation.New(ctx, rotation.Config{TrustDomain: td})
	store := memstore.New(memstore.Config{})
	tokens, _ := jointoken.NewServer(jointoken.ServerConfig{Store: store})
	srv, _ := nodeserver.New(ctx, nodeserver.Config{
		Authority: ca, Registry: store, Agents: store, Attestors: []attest.NodeAttestor{tokens},
	})
	defer srv.Close()
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Run(ctx) // follows the registry and the CA
	go srv.Serve(ctx, lis)
	agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/node-1")
	token, _, _ := jointoken.Generate(ctx, store, jointoken.Params{AgentID: agentID})
	store.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  agentID,
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
	})

	// The agent.
	cfg := nodeapi.ClientConfig{Servers: []string{lis.Addr().String()}, TrustDomain: td, Bundle: ca.Bundle()}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	svid, err := nodeapi.Attest(ctx, cfg, jointoken.NewClient(token), key)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("agent:", svid.ID)
	client, _ := nodeapi.Dial(cfg, &x509svid.SVID{ID: svid.ID, Certificates: svid.Certificates, PrivateKey: key})
	defer client.Close()

	var entry registry.Entry
	client.Sync(ctx, nil, func(u nodeapi.Update) error {
		if len(u.Upserts) == 0 {
			return nil // the bundle alone, the entry comes next
		}
		entry = u.Upserts[0]
		return context.Canceled // one entry is enough here
	})
	workloadKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := nodeapi.NewCSR(workloadKey, entry.SPIFFEID)
	res, _ := client.SignX509SVIDs(ctx, []nodeapi.X509SVIDRequest{{EntryID: entry.ID, CSR: csr}})
	id, _, err := x509svid.Verify(res[0].Certificates, ca.Bundle())
	fmt.Println("signed:", id, err)
	// Output:
	// agent: spiffe://example.org/spiffekit/agent/node-1
	// signed: spiffe://example.org/web <nil>
}
