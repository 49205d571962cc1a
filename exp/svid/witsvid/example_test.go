package witsvid_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func ExampleParseAndValidate() {
	// The trust domain's WIT signing key, published in its WIT bundle. In
	// real use the bundle comes from the Workload API.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	authority, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bundle := witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{"wit-1": authority.Public()})

	// The workload's own key pair, bound to its identity by the cnf claim.
	workloadKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: authority},
		(&jose.SignerOptions{}).WithType("wit+jwt").WithHeader(jose.HeaderKey("kid"), "wit-1"))
	token, _ := jwt.Signed(signer).Claims(map[string]any{
		"sub": "spiffe://example.org/frontend",
		"exp": time.Now().Add(time.Hour).Unix(),
		"cnf": map[string]any{"jwk": jose.JSONWebKey{Key: workloadKey.Public(), Algorithm: "ES256"}},
	}).Serialize()

	// The validator checks the token...
	svid, err := witsvid.ParseAndValidate(token, bundle)
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}

	// ...and, before accepting it, a proof of possession of the cnf key: here
	// a signature by the workload over a fresh challenge.
	challenge := []byte("challenge-8c1e")
	digest := sha256.Sum256(challenge)
	r, s, _ := ecdsa.Sign(rand.Reader, workloadKey, digest[:])
	proof := make([]byte, 64)
	r.FillBytes(proof[:32])
	s.FillBytes(proof[32:])
	if err := svid.VerifyProofOfPossession(challenge, proof); err != nil {
		fmt.Println("rejected:", err)
		return
	}
	fmt.Println("authenticated:", svid.ID)

	// Someone who copied the token but lacks the key cannot use it.
	fmt.Println(svid.VerifyProofOfPossession([]byte("challenge-2b9d"), proof))
	// Output:
	// authenticated: spiffe://example.org/frontend
	// witsvid: invalid proof of possession
}
