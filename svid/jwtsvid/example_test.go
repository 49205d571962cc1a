package jwtsvid_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

func ExampleParseAndValidate() {
	// The trust domain's JWT signing key, published in its JWT bundle. In real
	// use the token arrives in an Authorization header and the bundle comes
	// from the Workload API.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bundle := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"key-1": key.Public()})

	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), "key-1"))
	token, _ := jwt.Signed(signer).Claims(jwt.Claims{
		Subject:  "spiffe://example.org/frontend",
		Audience: jwt.Audience{"spiffe://example.org/reports"},
		Expiry:   jwt.NewNumericDate(time.Now().Add(5 * time.Minute)),
	}).Serialize()

	svid, err := jwtsvid.ParseAndValidate(token, bundle, []string{"spiffe://example.org/reports"})
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	fmt.Println("authenticated:", svid.ID)

	// A service with another name must not accept it.
	_, err = jwtsvid.ParseAndValidate(token, bundle, []string{"spiffe://example.org/billing"})
	fmt.Println(err)
	// Output:
	// authenticated: spiffe://example.org/frontend
	// jwtsvid: expected audience in ["spiffe://example.org/billing"] (audience=["spiffe://example.org/reports"])
}
