package spiffekit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// mtlsConfig returns a TLS configuration that presents svid and accepts only a
// peer whose X509-SVID verifies against bundles and whose ID passes match.
// The check runs in VerifyConnection, which also runs on resumed sessions.
func mtlsConfig(svid tls.Certificate, bundles x509bundle.Source, match spiffeid.Matcher) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{svid},
		ClientAuth:         tls.RequireAnyClientCert,
		InsecureSkipVerify: true, // replaced by the SPIFFE verification below
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, _, err := x509svid.Verify(cs.PeerCertificates, bundles)
			if err != nil {
				return err
			}
			return match(id)
		},
	}
}

// Example_mTLS mints two X509-SVIDs with an in-process CA and has a server
// and a client authenticate each other by SPIFFE ID over mutual TLS.
func Example_mTLS() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")

	// An in-process CA: a self-signed root for the trust domain.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	if err != nil {
		log.Fatal(err)
	}
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	if err != nil {
		log.Fatal(err)
	}
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})

	mint := func(path string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{
			PublicKey: key.Public(),
			ID:        spiffeid.RequireFromPath(td, path),
		})
		if err != nil {
			log.Fatal(err)
		}
		cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
		for _, c := range chain {
			cert.Certificate = append(cert.Certificate, c.Raw)
		}
		return cert
	}
	serverID := spiffeid.RequireFromPath(td, "/billing")
	clientID := spiffeid.RequireFromPath(td, "/web")

	lis, err := tls.Listen("tcp", "127.0.0.1:0", mtlsConfig(mint(serverID.Path()), bundle, spiffeid.MatchID(clientID)))
	if err != nil {
		log.Fatal(err)
	}
	defer lis.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		_, err = io.WriteString(conn, "hello from billing\n")
		done <- err
	}()

	conn, err := tls.Dial("tcp", lis.Addr().String(), mtlsConfig(mint(clientID.Path()), bundle, spiffeid.MatchID(serverID)))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	peer, _ := x509svid.IDFromCert(conn.ConnectionState().PeerCertificates[0])
	msg, err := io.ReadAll(conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		log.Fatal(err)
	}
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	fmt.Printf("client talked to %s: %s", peer, msg)
	// Output: client talked to spiffe://example.org/billing: hello from billing
}
