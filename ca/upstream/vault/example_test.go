package vault_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/upstream/vault"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Example has a Vault PKI engine (here the package's stand-in) sign a new
// CA of example.org with an AppRole login, as ca/rotation does at each
// rotation.
func Example() {
	v, err := vaulttest.Start(vaulttest.Config{})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	v.AddAppRole("approle", "spire-role", "spire-secret", vaulttest.TokenParams{TTL: time.Hour, Renewable: true})

	up, err := vault.New(vault.Config{
		Address:  v.URL(), // https://vault.example.org:8200 with CACertFile
		PKIMount: "pki",
		Auth:     &vault.AppRoleAuth{RoleID: "spire-role", SecretID: "spire-secret"},
	})
	if err != nil {
		panic(err)
	}
	defer up.Close()

	td := spiffeid.RequireTrustDomainFromString("example.org")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{td.ID().URL()}}, key)
	resp, err := up.MintX509CA(context.Background(), ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: 24 * time.Hour})
	if err != nil {
		panic(err)
	}
	fmt.Println("CA:", resp.Chain[0].URIs[0], resp.Chain[0].IsCA)
	fmt.Println("issued by:", resp.Chain[0].Issuer.CommonName)
	fmt.Println("bundle root:", resp.Roots[0].Subject.CommonName)
	// Output:
	// CA: spiffe://example.org true
	// issued by: Vault Test Root
	// bundle root: Vault Test Root
}
