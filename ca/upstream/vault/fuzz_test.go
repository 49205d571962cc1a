package vault

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
)

// pki makes a root and an intermediate below it, as a Vault mount's
// chain, without starting a server.
func pki(t testing.TB) (root, inter *x509.Certificate, interKey crypto.Signer) {
	t.Helper()
	rootKey := newKey(t)
	tmpl := caTemplate()
	tmpl.Subject = pkix.Name{CommonName: "root"}
	root = issue(t, tmpl, tmpl, rootKey.Public(), rootKey)
	k := newKey(t)
	tmpl = caTemplate()
	tmpl.Subject = pkix.Name{CommonName: "intermediate"}
	return root, issue(t, tmpl, root, k.Public(), rootKey), k
}

func issue(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// FuzzParseCertificates feeds the PEM fields of Vault's answers to the
// parser: no panic, and what it accepts survives a round trip.
func FuzzParseCertificates(f *testing.F) {
	root, inter, _ := pki(f)
	chain := vaulttest.PEM(inter, root)
	f.Add(chain)
	f.Add(chain + "\n\n")
	f.Add("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
	f.Add("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		certs, err := parseCertificates(s, "field")
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "field"), err.Error())
			return
		}
		require.NotEmpty(t, certs)
		require.LessOrEqual(t, len(certs), maxCerts)
		again, err := parseCertificates(vaulttest.PEM(certs...), "field")
		require.NoError(t, err)
		require.Len(t, again, len(certs))
		for i := range certs {
			require.True(t, bytes.Equal(certs[i].Raw, again[i].Raw))
		}
	})
}

// FuzzCheckAnswer feeds arbitrary sign-intermediate and CA chain fields
// to the checks: no panic, and what passes is a CA for the CSR's key that
// chains to a root of the chain field.
func FuzzCheckAnswer(f *testing.F) {
	root, inter, interKey := pki(f)
	key := newKey(f)
	good := issue(f, caTemplate(td.IDString()), inter, key.Public(), interKey)
	chain := vaulttest.PEM(inter, root)
	f.Add(vaulttest.PEM(good, inter, root), chain)
	f.Add(vaulttest.PEM(good), vaulttest.PEM(root))
	f.Add(vaulttest.PEM(good), vaulttest.PEM(inter))
	f.Add(vaulttest.PEM(root), chain)
	f.Add("", "")
	now := time.Now()
	f.Fuzz(func(t *testing.T, cert, chainField string) {
		resp, err := checkAnswer(cert, chainField, key.Public(), td, now)
		if err != nil {
			return
		}
		require.True(t, resp.Chain[0].IsCA)
		require.True(t, key.PublicKey.Equal(resp.Chain[0].PublicKey))
		require.NotEmpty(t, resp.Roots)
		last := resp.Chain[len(resp.Chain)-1]
		signedByRoot := false
		for _, r := range resp.Roots {
			if last.CheckSignatureFrom(r) == nil {
				signedByRoot = true
			}
		}
		require.True(t, signedByRoot)
	})
}
