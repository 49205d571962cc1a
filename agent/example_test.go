package agent_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// A server and an agent in one process; this process, as a workload, gets
// its identity from the agent.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	td := spiffeid.RequireTrustDomainFromString("example.org")

	ca, _ := rotation.New(ctx, rotation.Config{TrustDomain: td})
	store := memstore.New(memstore.Config{})
	tokens, _ := jointoken.NewServer(jointoken.ServerConfig{Store: store})
	srv, _ := nodeserver.New(ctx, nodeserver.Config{
		Authority: ca, Registry: store, Agents: store, Attestors: []attest.NodeAttestor{tokens},
	})
	defer srv.Close()
	lis, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Run(ctx)
	go srv.Serve(ctx, lis)
	agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/node-1")
	token, _, _ := jointoken.Generate(ctx, store, jointoken.Params{AgentID: agentID})
	store.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/me"),
		ParentID:  agentID,
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}},
	})

	workloads, _ := unix.New(unix.Config{})
	dir, _ := os.MkdirTemp("", "agent")
	defer os.RemoveAll(dir)
	api, _ := endpoint.ListenUnix(filepath.Join(dir, "api.sock"), 0o700)
	a, err := agent.New(ctx, agent.Config{
		TrustDomain:       td,
		Servers:           []string{lis.Addr().String()},
		TrustBundle:       ca.Bundle().X509Bundle(),
		NodeAttestor:      jointoken.NewClient(token),
		WorkloadAttestors: []attest.WorkloadAttestor{workloads},
		Listener:          api, // the Workload API
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.Close()
	go a.Run(ctx)
	<-a.Synced()
	addr := "unix://" + api.Addr().String()

	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("agent:", a.ID())
	fmt.Println("workload:", svid.ID)
	// Output:
	// agent: spiffe://example.org/spiffekit/agent/node-1
	// workload: spiffe://example.org/me
}
