package spiffekit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Example_mTLS runs the whole kit in one process: an in-process CA mints two
// X509-SVIDs, a Workload API server hands them out on a unix socket, and a
// server and a client, each with its own X509Source, authenticate each other
// by SPIFFE ID over mutual TLS.
func Example_mTLS() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	billing := spiffeid.RequireFromPath(td, "/billing")
	web := spiffeid.RequireFromPath(td, "/web")

	// The issuer: a CA and a Workload API server on a temporary socket.
	socket := startIssuer(ctx, td, billing, web)

	// Both workloads run as this user, so the server gives both SVIDs to
	// each; the hint tells them apart.
	source := func(hint string) *workloadapi.X509Source {
		s, err := workloadapi.NewX509Source(ctx,
			workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+socket)),
			workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
				for _, s := range svids {
					if s.Hint == hint {
						return s
					}
				}
				return svids[0]
			}))
		if err != nil {
			log.Fatal(err)
		}
		return s
	}
	billingSource, webSource := source("billing"), source("web")
	defer billingSource.Close()
	defer webSource.Close()

	// The billing service accepts only spiffe://example.org/web.
	lis, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0",
		spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(web), billingSource))
	if err != nil {
		log.Fatal(err)
	}
	defer lis.Close()
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		peer, _ := spiffetls.PeerIDFromConn(conn)
		fmt.Fprintf(conn, "hello %s\n", peer)
	}()

	// The web client accepts only spiffe://example.org/billing as its server.
	conn, err := spiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(),
		spiffetls.MTLSClientWithSource(tlsconfig.AuthorizeID(billing), webSource))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	peer, _ := spiffetls.PeerIDFromConn(conn)
	msg, _ := io.ReadAll(conn)
	fmt.Printf("%s says: %s", peer, msg)
	// Output: spiffe://example.org/billing says: hello spiffe://example.org/web
}

// startIssuer mints an X509-SVID for each ID with a new CA and serves them
// with the Workload API on a new socket, whose path it returns. It stops when
// ctx is done.
func startIssuer(ctx context.Context, td spiffeid.TrustDomain, ids ...spiffeid.ID) string {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	if err != nil {
		log.Fatal(err)
	}
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	if err != nil {
		log.Fatal(err)
	}
	snapshot := &endpoint.Snapshot{
		TrustDomain: td,
		Bundles:     []*spiffebundle.Bundle{spiffebundle.FromX509Authorities(td, authority.Chain())},
	}
	for _, id := range ids {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
		if err != nil {
			log.Fatal(err)
		}
		snapshot.X509SVIDs = append(snapshot.X509SVIDs, &x509svid.SVID{
			ID: id, Certificates: chain, PrivateKey: key, Hint: filepath.Base(id.Path()),
		})
	}

	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{}) // keyed by the caller's uid
	if err := handler.Set(strconv.Itoa(os.Getuid()), snapshot); err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "spiffekit")
	if err != nil {
		log.Fatal(err)
	}
	socket := filepath.Join(dir, "workload.sock")
	lis, err := endpoint.ListenUnix(socket, 0o700)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := endpoint.New(endpoint.Config{Handler: handler})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		_ = srv.Serve(ctx, lis)
		os.RemoveAll(dir)
	}()
	return socket
}
