package ca_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSignX509SVIDProfile(t *testing.T) {
	authority, _ := newRoot(t, 0)
	root := authority.Certificate()
	leafKey := newP256(t)
	id := mustID("spiffe://example.org/workload")

	chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{
		PublicKey: leafKey.Public(),
		ID:        id,
		DNSNames:  []string{"svc.example.org", "*.svc.example.org"},
	})
	require.NoError(t, err)
	require.Len(t, chain, 2)
	leaf := chain[0]

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"X509 rule 1: exactly one URI SAN, the ID", func(t *testing.T) {
			require.Len(t, leaf.URIs, 1)
			assert.Equal(t, id.String(), leaf.URIs[0].String())
			assert.Equal(t, []string{"svc.example.org", "*.svc.example.org"}, leaf.DNSNames)
		}},
		{"X509 rule 3: empty subject makes the SAN critical", func(t *testing.T) {
			assert.Empty(t, leaf.Subject.Names)
			ext := extension(leaf, oidSAN)
			require.NotNil(t, ext)
			assert.True(t, ext.Critical)
		}},
		{"X509 rule 4: basicConstraints present, critical, cA=FALSE", func(t *testing.T) {
			ext := extension(leaf, oidBasicConstraints)
			require.NotNil(t, ext)
			assert.True(t, ext.Critical)
			assert.True(t, leaf.BasicConstraintsValid)
			assert.False(t, leaf.IsCA)
		}},
		{"X509 rule 5: leaf has no pathLenConstraint", func(t *testing.T) {
			assert.Equal(t, -1, leaf.MaxPathLen)
		}},
		{"X509 rules 6, 8: keyUsage critical, digitalSignature only", func(t *testing.T) {
			ext := extension(leaf, oidKeyUsage)
			require.NotNil(t, ext)
			assert.True(t, ext.Critical)
			assert.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage)
		}},
		{"X509 rule 9: extKeyUsage serverAuth and clientAuth", func(t *testing.T) {
			assert.ElementsMatch(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
			assert.Empty(t, leaf.UnknownExtKeyUsage)
		}},
		{"X509 rule 15: chain is leaf first, then the authority", func(t *testing.T) {
			assert.Same(t, root, chain[1])
			require.NoError(t, leaf.CheckSignatureFrom(root))
		}},
		{"profile E: serial positive, at most 20 octets", func(t *testing.T) {
			require.Positive(t, leaf.SerialNumber.Sign())
			der, err := asn1.Marshal(leaf.SerialNumber)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(der)-2, 20)
		}},
		{"profile E: NotBefore backdated 10s, default TTL 1h", func(t *testing.T) {
			assert.Equal(t, testNow.Add(-10*time.Second), leaf.NotBefore)
			assert.Equal(t, testNow.Add(time.Hour), leaf.NotAfter)
		}},
		{"profile E: subject and authority key identifiers", func(t *testing.T) {
			require.Len(t, leaf.SubjectKeyId, 20)
			b, err := leafKey.PublicKey.Bytes()
			require.NoError(t, err)
			sum := sha256.Sum256(b)
			assert.Equal(t, sum[:20], leaf.SubjectKeyId)
			require.NotEmpty(t, root.SubjectKeyId)
			assert.Equal(t, root.SubjectKeyId, leaf.AuthorityKeyId)
		}},
		{"X509 rules 16-21: verifies against the trust domain bundle", func(t *testing.T) {
			bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
			got, chains, err := x509svid.Verify(chain, bundle, x509svid.WithTime(testNow))
			require.NoError(t, err)
			assert.Equal(t, id, got)
			assert.NotEmpty(t, chains)
			raw := [][]byte{chain[0].Raw, chain[1].Raw}
			got, _, err = x509svid.ParseAndVerify(raw, bundle, x509svid.WithTime(testNow))
			require.NoError(t, err)
			assert.Equal(t, id, got)
		}},
		{"X509 rule 20: another trust domain's bundle does not verify it", func(t *testing.T) {
			other, _ := newRoot(t, 0)
			bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{other.Certificate()})
			_, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(testNow))
			require.Error(t, err)
		}},
		{"parses as an own SVID with its key", func(t *testing.T) {
			keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
			require.NoError(t, err)
			svid, err := x509svid.ParseRaw(append(bytes.Clone(chain[0].Raw), chain[1].Raw...), keyDER)
			require.NoError(t, err)
			assert.Equal(t, id, svid.ID)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

func TestSignX509SVIDOptions(t *testing.T) {
	authority, _ := newRoot(t, 0)
	id := mustID("spiffe://example.org/workload")

	t.Run("subject is used as given", func(t *testing.T) {
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{
			PublicKey: newP256(t).Public(), ID: id,
			Subject: pkix.Name{CommonName: "workload", Organization: []string{"Acme"}},
		})
		require.NoError(t, err)
		assert.Equal(t, "workload", chain[0].Subject.CommonName)
		assert.Equal(t, []string{"Acme"}, chain[0].Subject.Organization)
	})
	t.Run("X509 rule 8: keyEncipherment and keyAgreement may be added", func(t *testing.T) {
		ku := x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{
			PublicKey: newRSA(t, 2048).Public(), ID: id, KeyUsage: ku,
		})
		require.NoError(t, err)
		assert.Equal(t, x509.KeyUsageDigitalSignature|ku, chain[0].KeyUsage)
	})
	t.Run("TTL is honoured", func(t *testing.T) {
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{
			PublicKey: newP256(t).Public(), ID: id, TTL: 10 * time.Minute,
		})
		require.NoError(t, err)
		assert.Equal(t, testNow.Add(10*time.Minute), chain[0].NotAfter)
	})
	t.Run("key types", func(t *testing.T) {
		edPub, _, err := ed25519.GenerateKey(rand.Reader)
		require.NoError(t, err)
		for _, pub := range []crypto.PublicKey{
			newECKey(t, elliptic.P384()).Public(),
			newECKey(t, elliptic.P521()).Public(),
			edPub,
			newRSA(t, 3072).Public(),
		} {
			chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: pub, ID: id})
			require.NoError(t, err, "%T", pub)
			assert.True(t, chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub))
		}
	})
	t.Run("ID rule 17: an ID of exactly 2048 bytes is accepted", func(t *testing.T) {
		long := mustID("spiffe://example.org/" + strings.Repeat("a", 2048-len("spiffe://example.org/")))
		require.Len(t, long.String(), 2048)
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: newP256(t).Public(), ID: long})
		require.NoError(t, err)
		assert.Equal(t, long.String(), chain[0].URIs[0].String())
	})
	t.Run("the returned chain is the caller's", func(t *testing.T) {
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: newP256(t).Public(), ID: id})
		require.NoError(t, err)
		chain[1] = nil
		assert.NotNil(t, authority.Chain()[0])
	})
}

func TestSignX509SVIDRejects(t *testing.T) {
	authority, _ := newRoot(t, 0)
	pub := newP256(t).Public()
	id := mustID("spiffe://example.org/workload")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		params ca.X509SVIDParams
		errMsg string
	}{
		{"missing ID", nil, ca.X509SVIDParams{PublicKey: pub}, "SPIFFE ID is missing"},
		// X509 rule 2
		{"X509 rule 2: ID without path", nil, ca.X509SVIDParams{PublicKey: pub, ID: td.ID()}, "has no path"},
		// ID rule 17
		{"ID rule 17: ID over 2048 bytes", nil, ca.X509SVIDParams{PublicKey: pub, ID: mustID("spiffe://example.org/" + strings.Repeat("a", 2048))}, "more than the 2048 allowed"},
		// X509 rule 11: an authority signs only for its own trust domain.
		{"X509 rule 11: foreign trust domain", nil, ca.X509SVIDParams{PublicKey: pub, ID: mustID("spiffe://other.org/workload")}, "not a member"},
		{"no key", nil, ca.X509SVIDParams{ID: id}, "public key is missing"},
		{"key and CSR", nil, ca.X509SVIDParams{PublicKey: pub, CSR: []byte{0x30}, ID: id}, "both a public key and a CSR"},
		{"P-224 key", nil, ca.X509SVIDParams{PublicKey: newECKey(t, elliptic.P224()).Public(), ID: id}, "unsupported ECDSA curve"},
		{"RSA-1024 key", nil, ca.X509SVIDParams{PublicKey: newRSA(t, 1024).Public(), ID: id}, "RSA key size 1024"},
		{"unsupported key type", nil, ca.X509SVIDParams{PublicKey: "key", ID: id}, "unsupported public key type"},
		{"invalid ECDSA point", nil, ca.X509SVIDParams{PublicKey: &ecdsa.PublicKey{Curve: elliptic.P256(), X: bigOne(), Y: bigOne()}, ID: id}, "invalid ECDSA public key"},
		{"negative TTL", nil, ca.X509SVIDParams{PublicKey: pub, ID: id, TTL: -time.Second}, "TTL -1s is negative"},
		// X509 rule 8
		{"X509 rule 8: keyCertSign", nil, ca.X509SVIDParams{PublicKey: pub, ID: id, KeyUsage: x509.KeyUsageCertSign}, "not allowed on an X509-SVID"},
		{"X509 rule 8: cRLSign", nil, ca.X509SVIDParams{PublicKey: pub, ID: id, KeyUsage: x509.KeyUsageCRLSign}, "not allowed on an X509-SVID"},
		{"empty DNS name", nil, ca.X509SVIDParams{PublicKey: pub, ID: id, DNSNames: []string{""}}, "DNS name is empty"},
		{"too many DNS names", nil, ca.X509SVIDParams{PublicKey: pub, ID: id, DNSNames: make([]string, 101)}, "101 DNS names"},
		{"cancelled context", cancelled, ca.X509SVIDParams{PublicKey: pub, ID: id}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			chain, err := authority.SignX509SVID(ctx, tt.params)
			require.ErrorContains(t, err, tt.errMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "ca: "), err.Error())
			assert.Nil(t, chain)
		})
	}
	t.Run("cancelled context is errors.Is-able", func(t *testing.T) {
		_, err := authority.SignX509SVID(cancelled, ca.X509SVIDParams{PublicKey: pub, ID: id})
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestDNSNames(t *testing.T) {
	authority, _ := newRoot(t, 0)
	pub := newP256(t).Public()
	id := mustID("spiffe://example.org/workload")
	tests := []struct {
		name string
		ok   bool
	}{
		{"example.org", true},
		{"a", true},
		{"A-1.Example.ORG", true},
		{"*.example.org", true},
		{strings.Repeat("a", 63) + ".org", true},
		{strings.Repeat("a.", 126) + "a", true}, // 253 bytes
		{strings.Repeat("a", 64) + ".org", false},
		{strings.Repeat("a.", 126) + "ab", false}, // 254 bytes
		{"example.org.", false},
		{".example.org", false},
		{"a..b", false},
		{"-a.org", false},
		{"a-.org", false},
		{"a_b.org", false},
		{"*", false},
		{"a.*.org", false},
		{"**.org", false},
		{"192.168.0.1:80", false},
		{"exämple.org", false},
		{"a b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: pub, ID: id, DNSNames: []string{tt.name}})
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, "DNS name")
			}
		})
	}
}

func TestTTLCapping(t *testing.T) {
	pub := newP256(t).Public()
	id := mustID("spiffe://example.org/workload")

	t.Run("capped at the authority's NotAfter", func(t *testing.T) {
		authority, _ := newRoot(t, 30*time.Minute)
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: pub, ID: id, TTL: 2 * time.Hour})
		require.NoError(t, err)
		assert.Equal(t, authority.Certificate().NotAfter, chain[0].NotAfter)
		assert.Equal(t, testNow.Add(30*time.Minute), chain[0].NotAfter)

		chain, err = authority.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: pub})
		require.NoError(t, err)
		assert.Equal(t, authority.Certificate().NotAfter, chain[0].NotAfter)
	})
	t.Run("capped at the upstream chain's NotAfter", func(t *testing.T) {
		upstream, upstreamKey := newRoot(t, 40*time.Minute)
		interKey := newP256(t)
		// An intermediate issued (by other software) to outlive its issuer;
		// the authority must still not mint past the upstream expiry.
		tmpl := plainCA("intermediate", "spiffe://example.org")
		tmpl.NotBefore, tmpl.NotAfter = testNow.Add(-time.Hour), testNow.Add(24*time.Hour)
		inter := caCert(t, tmpl, upstream.Certificate(), interKey.Public(), upstreamKey)
		authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{
			Signer: interKey, Certificate: inter, UpstreamChain: upstream.Chain(), Now: clock,
		})
		require.NoError(t, err)
		out, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: pub, ID: id})
		require.NoError(t, err)
		require.Len(t, out, 3)
		assert.Equal(t, testNow.Add(40*time.Minute), out[0].NotAfter)
	})
	t.Run("expired authority refuses to sign", func(t *testing.T) {
		key := newP256(t)
		root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td, TTL: time.Minute, Now: clock})
		require.NoError(t, err)
		later := func() time.Time { return testNow.Add(time.Hour) }
		authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root, Now: later})
		require.NoError(t, err)
		_, err = authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: pub, ID: id})
		require.ErrorContains(t, err, "authority expired")
		_, err = authority.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: pub})
		require.ErrorContains(t, err, "authority expired")
	})
}

func TestSignX509SVIDFromCSR(t *testing.T) {
	authority, _ := newRoot(t, 0)
	id := mustID("spiffe://example.org/workload")
	key := newP256(t)
	evil, _ := url.Parse("spiffe://example.org/admin")
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "admin"},
		DNSNames:       []string{"evil.example.com"},
		URIs:           []*url.URL{evil},
		EmailAddresses: []string{"root@example.org"},
		ExtraExtensions: []pkix.Extension{{
			// A request for cA=TRUE must be ignored.
			Id: oidBasicConstraints, Critical: true, Value: []byte{0x30, 0x03, 0x01, 0x01, 0xff},
		}},
	}, key)
	require.NoError(t, err)

	t.Run("only the public key is taken from the CSR", func(t *testing.T) {
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{CSR: csr, ID: id, DNSNames: []string{"svc.example.org"}})
		require.NoError(t, err)
		leaf := chain[0]
		assert.True(t, key.PublicKey.Equal(leaf.PublicKey))
		require.Len(t, leaf.URIs, 1)
		assert.Equal(t, id.String(), leaf.URIs[0].String())
		assert.Equal(t, []string{"svc.example.org"}, leaf.DNSNames)
		assert.Empty(t, leaf.EmailAddresses)
		assert.Empty(t, leaf.Subject.CommonName)
		assert.False(t, leaf.IsCA)

		bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{authority.Certificate()})
		got, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(testNow))
		require.NoError(t, err)
		assert.Equal(t, id, got)
	})
	t.Run("CSR for a CA certificate", func(t *testing.T) {
		chain, err := authority.SignX509CA(t.Context(), ca.X509CAParams{CSR: csr})
		require.NoError(t, err)
		assert.True(t, key.PublicKey.Equal(chain[0].PublicKey))
		assert.Equal(t, "spiffe://example.org", chain[0].URIs[0].String())
		assert.Empty(t, chain[0].DNSNames)
	})

	bad := bytes.Clone(csr)
	bad[len(bad)-5] ^= 0xff // inside the signature
	tests := []struct {
		name   string
		csr    []byte
		errMsg string
	}{
		{"bad signature", bad, "invalid CSR signature"},
		{"garbage", []byte("not a CSR"), "invalid CSR"},
		{"truncated", csr[:len(csr)/2], "invalid CSR"},
		{"oversized", make([]byte, 64<<10), "more than the 32768 allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{CSR: tt.csr, ID: id})
			require.ErrorContains(t, err, tt.errMsg)
			_, err = authority.SignX509CA(t.Context(), ca.X509CAParams{CSR: tt.csr})
			require.ErrorContains(t, err, tt.errMsg)
		})
	}
}

func TestNewX509Authority(t *testing.T) {
	key := newP256(t)
	good := caCert(t, plainCA("root", "spiffe://example.org"), nil, key.Public(), key)
	other := newP256(t)

	noKCS := plainCA("root")
	noKCS.KeyUsage = x509.KeyUsageCRLSign
	notCA := plainCA("root")
	notCA.IsCA = false
	notCA.KeyUsage = x509.KeyUsageDigitalSignature
	emptySubject := plainCA("", "spiffe://example.org")
	upstreamOther := caCert(t, plainCA("other"), nil, other.Public(), other)
	upstreamNotCA := caCert(t, notCA, nil, other.Public(), other)
	p224 := newECKey(t, elliptic.P224())
	p224Cert := caCert(t, plainCA("r"), good, p224.Public(), key)

	tests := []struct {
		name   string
		cfg    ca.X509AuthorityConfig
		errMsg string
	}{
		{"nil signer", ca.X509AuthorityConfig{Certificate: good}, "signer is missing"},
		{"nil certificate", ca.X509AuthorityConfig{Signer: key}, "certificate is missing"},
		{"X509 rule 4: not a CA", ca.X509AuthorityConfig{Signer: key, Certificate: caCert(t, notCA, nil, key.Public(), key)}, "not a CA"},
		{"X509 rule 7: no keyCertSign", ca.X509AuthorityConfig{Signer: key, Certificate: caCert(t, noKCS, nil, key.Public(), key)}, "keyCertSign"},
		{"signer does not match", ca.X509AuthorityConfig{Signer: other, Certificate: good}, "signer does not match"},
		{"empty subject", ca.X509AuthorityConfig{Signer: key, Certificate: caCert(t, emptySubject, nil, key.Public(), key)}, "empty subject"},
		{"X509 rule 11: ID with a path", ca.X509AuthorityConfig{Signer: key, Certificate: caCert(t, plainCA("r", "spiffe://example.org/ca"), nil, key.Public(), key)}, "has a path"},
		{"X509 rule 1: two URI SANs", ca.X509AuthorityConfig{Signer: key, Certificate: caCert(t, plainCA("r", "spiffe://example.org", "spiffe://other.org"), nil, key.Public(), key)}, "more than one URI SAN"},
		{"non-SPIFFE URI SAN", ca.X509AuthorityConfig{Signer: key, Certificate: caCert(t, plainCA("r", "https://example.org"), nil, key.Public(), key)}, "not a SPIFFE ID"},
		{"upstream did not sign", ca.X509AuthorityConfig{Signer: key, Certificate: good, UpstreamChain: []*x509.Certificate{upstreamOther}}, "did not sign"},
		{"upstream not a CA", ca.X509AuthorityConfig{Signer: key, Certificate: good, UpstreamChain: []*x509.Certificate{upstreamNotCA}}, "not a CA allowed"},
		{"upstream nil", ca.X509AuthorityConfig{Signer: key, Certificate: good, UpstreamChain: []*x509.Certificate{nil}}, "is nil"},
		{"unsupported authority key", ca.X509AuthorityConfig{Signer: p224, Certificate: p224Cert}, "unsupported ECDSA curve"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ca.NewX509Authority(tt.cfg)
			require.ErrorContains(t, err, tt.errMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "ca: "), err.Error())
			assert.Nil(t, a)
		})
	}

	t.Run("authority without SKID still yields an AuthorityKeyId", func(t *testing.T) {
		// Go generates a SubjectKeyId for CA templates, so strip it by
		// building a certificate value without one.
		c := *good
		c.SubjectKeyId = nil
		a, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: &c, Now: clock})
		require.NoError(t, err)
		chain, err := a.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: other.Public(), ID: mustID("spiffe://example.org/w")})
		require.NoError(t, err)
		assert.Len(t, chain[0].AuthorityKeyId, 20)
		assert.Nil(t, c.SubjectKeyId, "the caller's certificate is not modified")
	})
	t.Run("authority without SPIFFE ID signs for any trust domain", func(t *testing.T) {
		root := caCert(t, plainCA("corp root"), nil, key.Public(), key)
		a, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root, Now: clock})
		require.NoError(t, err)
		for _, s := range []string{"spiffe://example.org/w", "spiffe://other.org/w"} {
			chain, err := a.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: other.Public(), ID: mustID(s)})
			require.NoError(t, err)
			assert.Equal(t, s, chain[0].URIs[0].String())
		}
		// spiffe-id.md note: empty DNS labels cannot be carried by crypto/x509.
		for _, s := range []string{"spiffe://a..b/w", "spiffe://.a/w", "spiffe://a./w"} {
			_, err := a.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: other.Public(), ID: mustID(s)})
			require.ErrorContains(t, err, "empty DNS label", s)
		}
		_, err = a.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: other.Public()})
		require.ErrorContains(t, err, "trust domain is missing")
		chain, err := a.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: other.Public(), TrustDomain: otherTD})
		require.NoError(t, err)
		assert.Equal(t, "spiffe://other.org", chain[0].URIs[0].String())
		_, err = a.SignX509CA(t.Context(), ca.X509CAParams{PublicKey: other.Public(), TrustDomain: spiffeid.RequireTrustDomainFromString("a..b")})
		require.ErrorContains(t, err, "empty DNS label")
	})
}

func bigOne() *big.Int { return big.NewInt(1) }

func TestConcurrentSigning(t *testing.T) {
	authority, _ := newRoot(t, 0)
	jwtAuthority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: newP256(t), Now: clock})
	require.NoError(t, err)
	pub := newP256(t).Public()
	id := mustID("spiffe://example.org/workload")
	errs := make(chan error, 16)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: pub, ID: id})
			errs <- err
			_, err = jwtAuthority.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}
