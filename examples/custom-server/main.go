// Command custom-server assembles, in one process, an issuing server and a
// node agent from spiffekit's packages, with attestors written here: the
// server keeps its registry (registry/memstore) and CA keys
// (ca/keymanager) in memory and admits nodes that hold a pre-shared key
// (psk.go); the agent tells workloads apart by their unix user
// (attest/unix) and their working directory (cwd.go). It registers
// spiffe://example.org/workload for the current user working in -cwd, and
// serves the Workload API on -socket until interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func main() {
	cwd, _ := os.Getwd()
	socket := flag.String("socket", filepath.Join(os.TempDir(), "custom-server.sock"), "Workload API socket")
	dir := flag.String("cwd", cwd, "working directory a workload needs for spiffe://example.org/workload")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *socket, *dir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "custom-server:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then returns nil, or the failure.
func run(ctx context.Context, socket, dir string, out io.Writer) error {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	key := []byte("in real life: read from a secret store") // shared by the server and its nodes
	store := memstore.New(memstore.Config{})
	srv, err := server.New(ctx, server.Config{
		TrustDomain:   td,
		Stores:        server.StoresOf(store),
		KeyManager:    keymanager.NewMemory(),
		NodeAttestors: map[string]attest.NodeAttestor{pskType: pskServer{key: key}},
		BindAddr:      "127.0.0.1:0",
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	users, err := unix.New(unix.Config{})
	if err != nil {
		return err
	}
	// 0777: attestation, not the file mode, decides who gets what.
	lis, err := endpoint.ListenUnix(socket, 0o777)
	if err != nil {
		return err
	}
	ag, err := agent.New(ctx, agent.Config{
		TrustDomain:       td,
		Servers:           []string{srv.Addr().String()},
		TrustBundle:       srv.Bundle().X509Bundle(), // handed over out of band, in real life
		NodeAttestor:      pskClient{node: "node-1", key: key},
		WorkloadAttestors: []attest.WorkloadAttestor{users, cwdAttestor{}},
		Listener:          lis,
	})
	if err != nil {
		lis.Close()
		return err
	}
	defer ag.Close()

	// The registry is a store like any other: write to it directly.
	parent, _ := agentID(td, "node-1")
	uid := attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
	if _, err := store.Create(ctx, registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/workload"),
		ParentID: parent, Selectors: []attest.Selector{uid, {Type: "cwd", Value: dir}}}); err != nil {
		return err
	}
	fmt.Fprintf(out, "Workload API on unix://%s: spiffe://example.org/workload for uid %d in %s\n", socket, os.Getuid(), dir)

	// Both run until ctx ends or one fails; the first failure stops both.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- srv.Run(ctx) }()
	go func() { errs <- ag.Run(ctx) }()
	first := <-errs
	cancel()
	return errors.Join(first, <-errs)
}
