package tlsconfig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// exampleTrust mints a root for example.org and returns its bundle and a
// function minting X509-SVIDs under it. Real workloads get both from the
// Workload API (workloadapi.X509Source).
func exampleTrust() (*x509bundle.Bundle, func(path string) *x509svid.SVID) {
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
	return x509bundle.FromX509Authorities(td, []*x509.Certificate{root}), mint
}

// A server that accepts only the client workload, and a client that accepts
// only the server workload, do an mTLS handshake over loopback; each side
// then reads the other's SPIFFE ID from the connection state.
func ExampleMTLSServerConfig() {
	bundle, mint := exampleTrust()
	serverSVID, clientSVID := mint("/server"), mint("/client")

	// Server: present serverSVID, require an X509-SVID for /client.
	serverConf := tlsconfig.MTLSServerConfig(serverSVID, bundle, tlsconfig.AuthorizeID(clientSVID.ID))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverConf)
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
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			log.Fatal(err)
		}
		id, err := x509svid.IDFromCert(tc.ConnectionState().PeerCertificates[0])
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("server sees", id)
		_, _ = io.WriteString(tc, "hello")
	}()

	// Client: present clientSVID, accept only the /server workload.
	clientConf := tlsconfig.MTLSClientConfig(clientSVID, bundle, tlsconfig.AuthorizeID(serverSVID.ID))
	conn, err := (&tls.Dialer{Config: clientConf}).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	msg, err := io.ReadAll(conn)
	if err != nil {
		log.Fatal(err)
	}
	<-done
	id, err := x509svid.IDFromCert(conn.(*tls.Conn).ConnectionState().PeerCertificates[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("client sees", id, "saying", string(msg))
	// Output:
	// server sees spiffe://example.org/client
	// client sees spiffe://example.org/server saying hello
}

// A client whose authorizer does not accept the server fails the handshake
// with an error naming the server's SPIFFE ID.
func ExampleMTLSClientConfig() {
	bundle, mint := exampleTrust()
	serverSVID, clientSVID := mint("/server"), mint("/client")

	ln, err := tls.Listen("tcp", "127.0.0.1:0",
		tlsconfig.MTLSServerConfig(serverSVID, bundle, tlsconfig.AuthorizeAny()))
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			_ = conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()

	want := spiffeid.RequireFromString("spiffe://example.org/database")
	clientConf := tlsconfig.MTLSClientConfig(clientSVID, bundle, tlsconfig.AuthorizeID(want))
	_, err = (&tls.Dialer{Config: clientConf}).DialContext(context.Background(), "tcp", ln.Addr().String())
	fmt.Println(err)
	// Output:
	// tlsconfig: peer "spiffe://example.org/server" is not authorized: spiffeid: unexpected ID "spiffe://example.org/server"
}
