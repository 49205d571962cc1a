package spiffetls_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"log"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// A listener and a client authenticate each other with X509-SVIDs over
// loopback. Here the SVIDs come from an in-process CA; with the Workload API,
// use spiffetls.Listen and spiffetls.Dial, or the WithSource modes.
func ExampleDialWithMode() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	if err != nil {
		log.Fatal(err)
	}
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	if err != nil {
		log.Fatal(err)
	}
	mint := func(path string) *x509svid.SVID {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		id := spiffeid.RequireFromPath(td, path)
		chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
		if err != nil {
			log.Fatal(err)
		}
		return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
	}
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
	serverSVID, clientSVID := mint("/server"), mint("/client")

	ln, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0",
		spiffetls.MTLSServerWithRawConfig(tlsconfig.AuthorizeMemberOf(td), serverSVID, bundle))
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		defer conn.Close()
		id, err := spiffetls.PeerIDFromConn(conn)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("server: client is", id)
		_, _ = io.WriteString(conn, "hello")
	}()

	conn, err := spiffetls.DialWithMode(ctx, "tcp", ln.Addr().String(),
		spiffetls.MTLSClientWithRawConfig(tlsconfig.AuthorizeID(serverSVID.ID), clientSVID, bundle))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	id, err := spiffetls.PeerIDFromConn(conn)
	if err != nil {
		log.Fatal(err)
	}
	<-done
	msg, err := io.ReadAll(conn)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("client: server is", id, "and says", string(msg))
	// Output:
	// server: client is spiffe://example.org/client
	// client: server is spiffe://example.org/server and says hello
}
