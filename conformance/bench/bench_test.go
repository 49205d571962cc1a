// Package bench measures spiffekit side by side with go-spiffe v2.9.0 and
// with the standard library, on identical inputs, so that one run of
//
//	go test -run '^$' -bench . -benchmem -count 5 ./bench
//
// gives comparable figures (see docs/PERFORMANCE.md).
package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"net/url"
	"testing"
	"time"

	gsjwtbundle "github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	gsx509bundle "github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gsjwtsvid "github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	gsx509svid "github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

const benchID = "spiffe://staging.example.com/ns/payments/sa/mysql-primary"

// sinks keep results alive so the compiler cannot drop the work.
var (
	sinkString string
	sinkErr    error
)

func BenchmarkFromString(b *testing.B) {
	b.Run("impl=spiffekit", func(b *testing.B) {
		for b.Loop() {
			id, err := spiffeid.FromString(benchID)
			sinkString, sinkErr = id.Path(), err
		}
	})
	b.Run("impl=go-spiffe", func(b *testing.B) {
		for b.Loop() {
			id, err := gsid.FromString(benchID)
			sinkString, sinkErr = id.Path(), err
		}
	})
}

func BenchmarkIDString(b *testing.B) {
	b.Run("impl=spiffekit", func(b *testing.B) {
		id := spiffeid.RequireFromString(benchID)
		for b.Loop() {
			sinkString = id.String()
		}
	})
	b.Run("impl=go-spiffe", func(b *testing.B) {
		id := gsid.RequireFromString(benchID)
		for b.Loop() {
			sinkString = id.String()
		}
	})
}

func newKey(b *testing.B) *ecdsa.PrivateKey {
	b.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	return k
}

// BenchmarkMintX509SVID compares ca.X509Authority.SignX509SVID with a bare
// x509.CreateCertificate call on an equivalent template (same profile, same
// CA key and leaf key). The raw variant also draws a random serial number and
// computes the subject key identifier on every iteration, as any issuer must.
// SignX509SVID additionally parses the certificate it created (it returns
// *x509.Certificate); "impl=raw+parse" shows that cost.
func BenchmarkMintX509SVID(b *testing.B) {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/ns/payments/sa/mysql")
	caKey, leafKey := newKey(b), newKey(b)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	require.NoError(b, err)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	require.NoError(b, err)

	b.Run("impl=spiffekit", func(b *testing.B) {
		for b.Loop() {
			_, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: leafKey.Public(), ID: id})
			sinkErr = err
		}
	})
	raw := func(parse bool) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				der, err := x509.CreateCertificate(rand.Reader, rawTemplate(b, id.URL(), leafKey.Public(), root), root, leafKey.Public(), caKey)
				if err == nil && parse {
					_, err = x509.ParseCertificate(der)
				}
				sinkErr = err
			}
		}
	}
	b.Run("impl=raw", raw(false))
	b.Run("impl=raw+parse", raw(true))
}

// rawTemplate builds the same leaf profile as ca.SignX509SVID (X509 rules
// 1-9): one URI SAN, cA=FALSE, keyUsage digitalSignature, EKU serverAuth and
// clientAuth, random 159-bit serial, SKI/AKI, 1 h lifetime backdated 10 s.
func rawTemplate(b *testing.B, uri *url.URL, pub crypto.PublicKey, parent *x509.Certificate) *x509.Certificate {
	var serial [20]byte
	_, err := rand.Read(serial[:])
	require.NoError(b, err)
	serial[0] &= 0x7f
	pk, err := pub.(*ecdsa.PublicKey).Bytes()
	require.NoError(b, err)
	skid := sha256.Sum256(pk)
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(serial[:]),
		NotBefore:             now.Add(-10 * time.Second),
		NotAfter:              now.Add(time.Hour),
		SubjectKeyId:          skid[:20],
		AuthorityKeyId:        parent.SubjectKeyId,
		URIs:                  []*url.URL{uri},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

// BenchmarkX509SVIDParseAndVerify verifies the same DER chain (leaf and
// intermediate, ECDSA P-256 throughout) against a bundle holding the root,
// with each library.
func BenchmarkX509SVIDParseAndVerify(b *testing.B) {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	rootKey, interKey, leafKey := newKey(b), newKey(b), newKey(b)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: rootKey, TrustDomain: td})
	require.NoError(b, err)
	rootCA, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: rootKey, Certificate: root})
	require.NoError(b, err)
	inter, err := rootCA.SignX509CA(ctx, ca.X509CAParams{PublicKey: interKey.Public()})
	require.NoError(b, err)
	interCA, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: interKey, Certificate: inter[0]})
	require.NoError(b, err)
	chain, err := interCA.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: leafKey.Public(), ID: spiffeid.RequireFromPath(td, "/workload")})
	require.NoError(b, err)
	require.Len(b, chain, 2) // leaf, intermediate
	raw := [][]byte{chain[0].Raw, chain[1].Raw}

	b.Run("impl=spiffekit", func(b *testing.B) {
		bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
		for b.Loop() {
			_, _, err := x509svid.ParseAndVerify(raw, bundle)
			sinkErr = err
		}
		require.NoError(b, sinkErr)
	})
	b.Run("impl=go-spiffe", func(b *testing.B) {
		bundle := gsx509bundle.FromX509Authorities(gsid.RequireTrustDomainFromString("example.org"), []*x509.Certificate{root})
		for b.Loop() {
			_, _, err := gsx509svid.ParseAndVerify(raw, bundle)
			sinkErr = err
		}
		require.NoError(b, sinkErr)
	})
}

// BenchmarkJWTSVIDParseAndValidate validates the same ES256 token, minted by
// the ca package, with each library.
func BenchmarkJWTSVIDParseAndValidate(b *testing.B) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	key := newKey(b)
	authority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: key, Algorithm: ca.ES256})
	require.NoError(b, err)
	token, err := authority.SignJWTSVID(context.Background(), ca.JWTSVIDParams{
		ID: spiffeid.RequireFromPath(td, "/workload"), Audience: []string{"svc"}, TTL: time.Hour,
	})
	require.NoError(b, err)
	keys := map[string]crypto.PublicKey{authority.KeyID(): authority.PublicKey()}
	audience := []string{"svc"}

	b.Run("impl=spiffekit", func(b *testing.B) {
		bundle := jwtbundle.FromJWTAuthorities(td, keys)
		for b.Loop() {
			_, err := jwtsvid.ParseAndValidate(token, bundle, audience)
			sinkErr = err
		}
		require.NoError(b, sinkErr)
	})
	b.Run("impl=go-spiffe", func(b *testing.B) {
		bundle := gsjwtbundle.FromJWTAuthorities(gsid.RequireTrustDomainFromString("example.org"), keys)
		for b.Loop() {
			_, err := gsjwtsvid.ParseAndValidate(token, bundle, audience)
			sinkErr = err
		}
		require.NoError(b, sinkErr)
	})
}
