package ca_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkCAProfile asserts the signing-certificate profile of x509-svid.md
// section E on cert.
func checkCAProfile(t *testing.T, cert *x509.Certificate) {
	t.Helper()
	// X509 rule 4: cA=TRUE, critical.
	bc := extension(cert, oidBasicConstraints)
	require.NotNil(t, bc)
	assert.True(t, bc.Critical)
	assert.True(t, cert.BasicConstraintsValid)
	assert.True(t, cert.IsCA)
	// X509 rules 6, 7: keyUsage critical, exactly keyCertSign|cRLSign.
	ku := extension(cert, oidKeyUsage)
	require.NotNil(t, ku)
	assert.True(t, ku.Critical)
	assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, cert.KeyUsage)
	// X509 rule 10: no extKeyUsage.
	assert.Nil(t, extension(cert, oidExtKeyUsage))
	// X509 rule 11: one URI SAN, the trust domain ID without a path.
	require.Len(t, cert.URIs, 1)
	assert.Equal(t, "spiffe://example.org", cert.URIs[0].String())
	// RFC 5280: a CA's subject is not empty.
	assert.NotEmpty(t, cert.Subject.Names)
	// Profile E: positive serial, key identifiers, backdated NotBefore.
	assert.Positive(t, cert.SerialNumber.Sign())
	assert.Len(t, cert.SubjectKeyId, 20)
	assert.Equal(t, testNow.Add(-10*time.Second), cert.NotBefore)
}

func TestCreateRoot(t *testing.T) {
	key := newP256(t)
	root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td, Now: clock})
	require.NoError(t, err)
	checkCAProfile(t, root)

	// X509 rule 14: self-signed.
	assert.Equal(t, root.RawSubject, root.RawIssuer)
	require.NoError(t, root.CheckSignatureFrom(root))
	assert.Equal(t, root.SubjectKeyId, root.AuthorityKeyId)
	assert.Equal(t, testNow.Add(ca.DefaultX509CATTL), root.NotAfter)
	assert.Equal(t, -1, root.MaxPathLen)
	assert.Equal(t, []string{"SPIFFE"}, root.Subject.Organization)
	assert.Equal(t, root.SerialNumber.String(), root.Subject.SerialNumber)

	t.Run("options", func(t *testing.T) {
		root, err := ca.CreateRoot(t.Context(), ca.RootParams{
			Signer: key, TrustDomain: td, TTL: 48 * time.Hour, Now: clock,
			Subject:    pkix.Name{CommonName: "Example Root"},
			MaxPathLen: 0, MaxPathLenZero: true,
		})
		require.NoError(t, err)
		assert.Equal(t, "Example Root", root.Subject.CommonName)
		assert.Equal(t, testNow.Add(48*time.Hour), root.NotAfter)
		assert.Equal(t, 0, root.MaxPathLen)
		assert.True(t, root.MaxPathLenZero)
	})
	t.Run("default clock", func(t *testing.T) {
		root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td})
		require.NoError(t, err)
		assert.WithinDuration(t, time.Now().Add(ca.DefaultX509CATTL), root.NotAfter, time.Minute)
	})

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		params ca.RootParams
		errMsg string
	}{
		{"no signer", nil, ca.RootParams{TrustDomain: td}, "signer is missing"},
		{"no trust domain", nil, ca.RootParams{Signer: key}, "trust domain is missing"},
		{"empty DNS label", nil, ca.RootParams{Signer: key, TrustDomain: mustTD("example..org")}, "empty DNS label"},
		{"negative TTL", nil, ca.RootParams{Signer: key, TrustDomain: td, TTL: -time.Hour}, "negative"},
		{"weak key", nil, ca.RootParams{Signer: newRSA(t, 1024), TrustDomain: td}, "RSA key size"},
		{"cancelled", cancelled, ca.RootParams{Signer: key, TrustDomain: td}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			root, err := ca.CreateRoot(ctx, tt.params)
			require.ErrorContains(t, err, tt.errMsg)
			assert.Nil(t, root)
		})
	}
}

func TestSignX509CA(t *testing.T) {
	rootAuthority, _ := newRoot(t, 0)
	root := rootAuthority.Certificate()
	interKey := newP256(t)

	chain, err := rootAuthority.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: interKey.Public(), TTL: 12 * time.Hour})
	require.NoError(t, err)
	require.Len(t, chain, 2)
	inter := chain[0]
	checkCAProfile(t, inter)
	assert.Same(t, root, chain[1])
	assert.Equal(t, root.SubjectKeyId, inter.AuthorityKeyId)
	assert.Equal(t, testNow.Add(12*time.Hour), inter.NotAfter)
	assert.Equal(t, -1, inter.MaxPathLen)
	require.NoError(t, inter.CheckSignatureFrom(root))

	// The intermediate is a working authority whose SVIDs verify against
	// the root bundle (X509 rules 15, 21).
	interAuthority, err := ca.NewX509Authority(ca.X509AuthorityConfig{
		Signer: interKey, Certificate: inter, UpstreamChain: chain[1:], Now: clock,
	})
	require.NoError(t, err)
	id := mustID("spiffe://example.org/downstream/workload")
	svid, err := interAuthority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: newP256(t).Public(), ID: id})
	require.NoError(t, err)
	require.Len(t, svid, 3)
	assert.Same(t, inter, svid[1])
	assert.Same(t, root, svid[2])
	assert.Equal(t, inter.SubjectKeyId, svid[0].AuthorityKeyId)
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
	got, chains, err := x509svid.Verify(svid, bundle, x509svid.WithTime(testNow))
	require.NoError(t, err)
	assert.Equal(t, id, got)
	require.Len(t, chains, 1)
	assert.Len(t, chains[0], 3)

	t.Run("trust domain given explicitly", func(t *testing.T) {
		chain, err := rootAuthority.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: interKey.Public(), TrustDomain: td})
		require.NoError(t, err)
		assert.Equal(t, "spiffe://example.org", chain[0].URIs[0].String())
	})
	t.Run("subject given explicitly", func(t *testing.T) {
		chain, err := rootAuthority.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: interKey.Public(), Subject: pkix.Name{CommonName: "Downstream"}})
		require.NoError(t, err)
		assert.Equal(t, "Downstream", chain[0].Subject.CommonName)
	})
	t.Run("X509 rule 5: pathLen", func(t *testing.T) {
		chain, err := rootAuthority.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: interKey.Public(), MaxPathLenZero: true})
		require.NoError(t, err)
		assert.Equal(t, 0, chain[0].MaxPathLen)
		assert.True(t, chain[0].MaxPathLenZero)

		chain, err = rootAuthority.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: interKey.Public(), MaxPathLen: 2})
		require.NoError(t, err)
		assert.Equal(t, 2, chain[0].MaxPathLen)
	})
}

func TestSignX509CAPathLen(t *testing.T) {
	key := newP256(t)
	pub := newP256(t).Public()
	authorityWith := func(t *testing.T, maxPathLen int, zero bool) *ca.X509Authority {
		root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td, MaxPathLen: maxPathLen, MaxPathLenZero: zero, Now: clock})
		require.NoError(t, err)
		a, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root, Now: clock})
		require.NoError(t, err)
		return a
	}
	tests := []struct {
		name       string
		issuerLen  int
		issuerZero bool
		childLen   int
		childZero  bool
		errMsg     string
	}{
		{"unconstrained issuer, unconstrained child", -1, false, 0, false, ""},
		{"issuer 0 forbids any CA", 0, true, 0, true, "forbids signing CA certificates"},
		{"issuer 1, child 0", 1, false, 0, true, ""},
		{"issuer 1, child 1", 1, false, 1, false, "must be below the authority's 1"},
		{"issuer 2, unconstrained child", 2, false, 0, false, "must be below the authority's 2"},
		{"issuer 2, child 1", 2, false, 1, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := authorityWith(t, tt.issuerLen, tt.issuerZero)
			chain, err := a.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: pub, MaxPathLen: tt.childLen, MaxPathLenZero: tt.childZero})
			if tt.errMsg != "" {
				require.ErrorContains(t, err, tt.errMsg)
				return
			}
			require.NoError(t, err)
			checkCAProfile(t, chain[0])
		})
	}
}

func TestSignX509CARejects(t *testing.T) {
	authority, _ := newRoot(t, 0)
	pub := newP256(t).Public()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name   string
		ctx    context.Context
		params ca.X509CAParams
		errMsg string
	}{
		{"X509 rule 11: another trust domain", nil, ca.X509CAParams{PublicKey: pub, TrustDomain: otherTD}, "not the authority's trust domain"},
		{"no key", nil, ca.X509CAParams{}, "public key is missing"},
		{"negative TTL", nil, ca.X509CAParams{PublicKey: pub, TTL: -1}, "negative"},
		{"cancelled", cancelled, ca.X509CAParams{PublicKey: pub}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			chain, err := authority.SignX509CA(ctx, tt.params)
			require.ErrorContains(t, err, tt.errMsg)
			assert.Nil(t, chain)
		})
	}
}

func TestAuthorityKeyTypes(t *testing.T) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	id := mustID("spiffe://example.org/workload")
	for _, key := range []crypto.Signer{newECKey(t, elliptic.P384()), newRSA(t, 2048), ed} {
		t.Run(fmt.Sprintf("%T", key), func(t *testing.T) {
			root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td, Now: clock})
			require.NoError(t, err)
			checkCAProfile(t, root)
			a, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root, Now: clock})
			require.NoError(t, err)
			chain, err := a.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: newP256(t).Public(), ID: id})
			require.NoError(t, err)
			got, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, []*x509.Certificate{root}), x509svid.WithTime(testNow))
			require.NoError(t, err)
			assert.Equal(t, id, got)
		})
	}
}
