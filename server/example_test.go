package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// An issuing server with its state in a directory (SQLite registry, CA
// keys on disk, join_token), administered through its socket.
func Example() {
	dir, _ := os.MkdirTemp("", "server")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cfg, store, err := server.OpenSQLite(ctx, spiffeid.RequireTrustDomainFromString("example.org"), filepath.Join(dir, "data"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.AdminSocket = filepath.Join(dir, "admin.sock")
	s, err := server.New(ctx, cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	c := admin.Dial(filepath.Join(dir, "admin.sock"))
	defer c.Close()
	token, err := c.GenerateToken(ctx, 10*time.Minute, spiffeid.ID{})
	fmt.Println("join token issued:", err == nil && token.Value != "")
	fmt.Println("X.509 authorities:", len(s.Bundle().X509Authorities()))

	cancel()
	fmt.Println("stopped:", <-done)
	s.Close()
	// Output:
	// join token issued: true
	// X.509 authorities: 1
	// stopped: <nil>
}

// A server serving its trust domain's bundle endpoint, fetched as a
// federated server would, authenticated by the server's X509-SVID.
func Example_federation() {
	dir, _ := os.MkdirTemp("", "server")
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	td := spiffeid.RequireTrustDomainFromString("example.org")
	s, err := server.New(ctx, server.Config{
		TrustDomain:    td,
		Stores:         server.StoresOf(memstore.New(memstore.Config{})),
		KeyManager:     keymanager.NewMemory(),
		BindAddr:       "127.0.0.1:0",
		FederationBind: "127.0.0.1:0",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// The other side was given this bundle once, out of band (bootstrap).
	bootstrap := s.Bundle()
	b, err := federation.FetchBundle(ctx, td, "https://"+s.FederationAddr().String()+"/",
		federation.WithSPIFFEAuth(bootstrap, spiffeid.RequireFromString("spiffe://example.org/spiffekit/server")))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("fetched X.509 authorities:", len(b.X509Authorities()))

	cancel()
	fmt.Println("stopped:", <-done)
	s.Close()
	// Output:
	// fetched X.509 authorities: 1
	// stopped: <nil>
}

// A server assembled from values: registry and CA keys in memory, and the
// node attestors it offers. Nothing touches the disk.
func ExampleConfig() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memstore.New(memstore.Config{})
	join, err := jointoken.NewServer(jointoken.ServerConfig{Store: store})
	if err != nil {
		fmt.Println(err)
		return
	}
	s, err := server.New(ctx, server.Config{
		TrustDomain:   spiffeid.RequireTrustDomainFromString("example.org"),
		Stores:        server.StoresOf(store),
		KeyManager:    keymanager.NewMemory(),
		NodeAttestors: map[string]attest.NodeAttestor{jointoken.Type: join},
		BindAddr:      "127.0.0.1:0",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	st := s.Stats()
	fmt.Println("entries:", st.Entries, "agents:", st.Agents)
	fmt.Println("CA valid for a day:", time.Until(st.CAExpiresAt).Round(time.Hour))
	cancel()
	fmt.Println("stopped:", <-done)
	// Output:
	// entries: 0 agents: 0
	// CA valid for a day: 24h0m0s
	// stopped: <nil>
}
