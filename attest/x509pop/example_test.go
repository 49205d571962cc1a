package x509pop_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A node holding a certificate from the node CA attests to a server that
// trusts that CA. The server's challenge reaches the agent's Respond; over
// the network it would travel in the node API's stream.
func Example() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	caCert, nodeCert, nodeKey, err := nodePKI()
	if err != nil {
		fmt.Println(err)
		return
	}

	server, err := x509pop.NewServer(x509pop.ServerConfig{Roots: []*x509.Certificate{caCert}})
	if err != nil {
		fmt.Println(err)
		return
	}
	client, err := x509pop.NewClient(x509pop.ClientConfig{
		TrustDomain:  td, // the client answers challenges of td's servers only
		Certificates: []*x509.Certificate{nodeCert},
		Key:          nodeKey,
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	payload, err := client.Payload(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := server.Attest(ctx, td, payload, func(ctx context.Context, challenge []byte) ([]byte, error) {
		return client.Respond(ctx, challenge)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fp := sha256.Sum256(nodeCert.Raw)
	fmt.Println(strings.Replace(res.AgentID.String(), hex.EncodeToString(fp[:]), "<SHA-256 of the certificate>", 1))
	fmt.Println("can re-attest:", res.CanReattest)
	for sel := range res.Selectors.All() {
		if sel.Value == "subject:cn:db-1" || sel.Value == "san:dns:db-1.internal" {
			fmt.Println(sel)
		}
	}
	// Output:
	// spiffe://example.org/spiffekit/agent/x509pop/<SHA-256 of the certificate>
	// can re-attest: true
	// x509pop:san:dns:db-1.internal
	// x509pop:subject:cn:db-1
}

// nodePKI returns a CA and a node certificate with its key, as an operator
// would provision them.
func nodePKI() (ca, node *x509.Certificate, nodeKey crypto.Signer, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "node CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	nodeTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "db-1"},
		DNSNames:     []string{"db-1.internal"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	nodeDER, err := x509.CreateCertificate(rand.Reader, nodeTmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	if node, err = x509.ParseCertificate(nodeDER); err != nil {
		return nil, nil, nil, err
	}
	return ca, node, key, nil
}
