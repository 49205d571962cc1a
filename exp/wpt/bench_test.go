package wpt_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/exp/wpt"
)

func benchSVID(b *testing.B, d *trustDomain, alg string) *witsvid.SVID {
	var key crypto.Signer
	switch alg {
	case "ES256":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(b, err)
		key = k
	default:
		key = rsaKey(b)
	}
	return d.svidFor(b, "/client", key, alg)
}

// BenchmarkMint measures minting one WPT for a request, as Transport does
// for each request.
func BenchmarkMint(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			d := newTrustDomain(b, "example.org")
			svid := benchSVID(b, d, alg)
			p := wpt.MintParams{Audience: testTarget, Method: http.MethodGet}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := wpt.Mint(svid, p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerify measures Verifier.Verify on a request: the WIT-SVID's
// validation (its authority's ES256 signature), the WPT's signature and
// claims, and the replay cache. Each request is verified once; a new
// Verifier (an empty replay cache) is made each time the pool of minted
// requests is used up, 1 in 1024 iterations.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"ES256", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			d := newTrustDomain(b, "example.org")
			svid := benchSVID(b, d, alg)
			newVerifier := func() *wpt.Verifier {
				v, err := wpt.NewVerifier(wpt.Config{Bundles: witbundle.NewSet(d.bundle()), Origins: []string{testOrigin}})
				require.NoError(b, err)
				return v
			}
			pool := make([]*http.Request, 1024)
			for i := range pool {
				token, err := wpt.Mint(svid, wpt.MintParams{Audience: testTarget, Method: http.MethodGet, Lifetime: wpt.DefaultMaxLifetime})
				require.NoError(b, err)
				pool[i] = request(svid.Marshal(), "WPT "+token)
			}
			v := newVerifier()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				if i == len(pool) {
					i, v = 0, newVerifier()
				}
				if _, err := v.Verify(pool[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkP256 is the floor under the ES256 figures, in the same run: one
// ECDSA P-256 signature (a mint makes one) and two verifications (a
// Verify checks the WIT-SVID's and the WPT's).
func BenchmarkP256(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	digest := sha256.Sum256([]byte("message"))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	require.NoError(b, err)
	b.Run("sign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ecdsa.SignASN1(rand.Reader, key, digest[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify2", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) || !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig) {
				b.Fatal("signature does not verify")
			}
		}
	})
}
