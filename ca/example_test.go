package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Make a root for a trust domain, mint an X509-SVID with it and verify the
// SVID against the trust domain's bundle.
func ExampleX509Authority_SignX509SVID() {
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

	workloadKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{
		PublicKey: workloadKey.Public(),
		ID:        spiffeid.RequireFromPath(td, "/web"),
	})
	if err != nil {
		log.Fatal(err)
	}

	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
	id, _, err := x509svid.Verify(chain, bundle)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id)
	fmt.Println(len(chain), "certificates, leaf first")
	// Output:
	// spiffe://example.org/web
	// 2 certificates, leaf first
}

// Mint a JWT-SVID and validate it with the trust domain's JWT bundle.
func ExampleJWTAuthority_SignJWTSVID() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	authority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: key, KeyID: "key-1"})
	if err != nil {
		log.Fatal(err)
	}
	token, err := authority.SignJWTSVID(ctx, ca.JWTSVIDParams{
		ID:       spiffeid.RequireFromPath(td, "/web"),
		Audience: []string{"db"},
	})
	if err != nil {
		log.Fatal(err)
	}

	bundle := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{
		authority.KeyID(): authority.PublicKey(),
	})
	svid, err := jwtsvid.ParseAndValidate(token, bundle, []string{"db"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(svid.ID, svid.Audience, authority.Algorithm())
	// Output: spiffe://example.org/web [db] ES256
}

// Sign the certificate of a downstream CA, which then issues SVIDs that chain
// to the root.
func ExampleX509Authority_SignX509CA() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")

	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: rootKey, TrustDomain: td})
	if err != nil {
		log.Fatal(err)
	}
	rootAuthority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: rootKey, Certificate: root})
	if err != nil {
		log.Fatal(err)
	}

	downstreamKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caChain, err := rootAuthority.SignX509CA(ctx, ca.X509CAParams{PublicKey: downstreamKey.Public()})
	if err != nil {
		log.Fatal(err)
	}
	downstream, err := ca.NewX509Authority(ca.X509AuthorityConfig{
		Signer:        downstreamKey,
		Certificate:   caChain[0],
		UpstreamChain: caChain[1:],
	})
	if err != nil {
		log.Fatal(err)
	}

	workloadKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	chain, err := downstream.SignX509SVID(ctx, ca.X509SVIDParams{
		PublicKey: workloadKey.Public(),
		ID:        spiffeid.RequireFromPath(td, "/web"),
	})
	if err != nil {
		log.Fatal(err)
	}
	id, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, []*x509.Certificate{root}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id, caChain[0].URIs[0], len(chain))
	// Output: spiffe://example.org/web spiffe://example.org 3
}
