package vault

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
)

// caTemplate is what a right answer would be for the CSR's key.
func caTemplate(uris ...string) *x509.Certificate {
	tmpl := &x509.Certificate{
		Subject:   pkix.Name{Organization: []string{"SPIFFE"}},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	for _, u := range uris {
		parsed, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	return tmpl
}

// setData replaces one field of the data of path's answers.
func setData(v *vaulttest.Server, path, field string, value any) {
	v.SetTamper(func(p string, resp map[string]any) {
		if p != path {
			return
		}
		data := resp["data"].(map[string]any)
		if value == nil {
			delete(data, field)
			return
		}
		data[field] = value
	})
}

// TestMintX509CARefusesBadAnswers: each wrong answer of a broken or
// hostile Vault is refused with an error that says what is wrong.
func TestMintX509CARefusesBadAnswers(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{})}})
	csr, key := newCSR(t)
	otherKey := newKey(t)
	const sign = "pki/root/sign-intermediate"

	mustSign := func(tmpl *x509.Certificate, pub any) string {
		cert, err := v.Sign(tmpl, pub)
		require.NoError(t, err)
		return vaulttest.PEM(cert)
	}
	// A CA for the right key and ID, but signed by a stranger.
	strangerTmpl := caTemplate(td.IDString())
	strangerTmpl.SerialNumber = big.NewInt(7)
	strangerKey := newKey(t)
	strangerDER, err := x509.CreateCertificate(rand.Reader, strangerTmpl, strangerTmpl, key.Public(), strangerKey)
	require.NoError(t, err)
	stranger, err := x509.ParseCertificate(strangerDER)
	require.NoError(t, err)
	noSign := caTemplate(td.IDString())
	noSign.KeyUsage = x509.KeyUsageCRLSign
	notCA := caTemplate(td.IDString())
	notCA.IsCA, notCA.KeyUsage = false, x509.KeyUsageDigitalSignature

	tests := []struct {
		name   string
		tamper func()
		want   string
	}{
		{"certificate of another key", func() { setData(v, sign, "certificate", mustSign(caTemplate(td.IDString()), otherKey.Public())) },
			"the signed certificate does not hold the CSR's key"},
		{"not a CA", func() { setData(v, sign, "certificate", mustSign(notCA, key.Public())) },
			"the signed certificate is not a CA"},
		{"no keyCertSign", func() { setData(v, sign, "certificate", mustSign(noSign, key.Public())) },
			"the signed certificate may not sign certificates"},
		{"wrong URI SAN", func() { setData(v, sign, "certificate", mustSign(caTemplate("spiffe://evil.org"), key.Public())) },
			"URI SANs [spiffe://evil.org] are not exactly spiffe://example.org"},
		{"workload URI SAN", func() {
			setData(v, sign, "certificate", mustSign(caTemplate("spiffe://example.org/admin"), key.Public()))
		},
			"are not exactly spiffe://example.org"},
		{"two URI SANs", func() {
			setData(v, sign, "certificate", mustSign(caTemplate(td.IDString(), "spiffe://other.org"), key.Public()))
		}, "are not exactly spiffe://example.org"},
		{"no URI SAN", func() { setData(v, sign, "certificate", mustSign(caTemplate(), key.Public())) },
			"are not exactly spiffe://example.org"},
		{"signed by a stranger", func() { setData(v, sign, "certificate", vaulttest.PEM(stranger)) },
			"the signed certificate does not chain to the mount's CA chain"},
		{"chain of a stranger", func() { setData(v, "pki/cert/ca_chain", "certificate", vaulttest.PEM(stranger)) },
			"does not chain to the mount's CA chain"},
		{"expired", func() {
			tmpl := caTemplate(td.IDString())
			tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
			setData(v, sign, "certificate", mustSign(tmpl, key.Public()))
		}, "does not chain to the mount's CA chain"},
		{"no certificate", func() { setData(v, sign, "certificate", nil) }, "the signed certificate is missing or not a string"},
		{"certificate not a string", func() { setData(v, sign, "certificate", 42) }, "the signed certificate is missing or not a string"},
		{"empty certificate", func() { setData(v, sign, "certificate", " \n") }, "the signed certificate holds no certificate"},
		{"DER certificate", func() { setData(v, sign, "certificate", "MIIB") }, "holds something other than PEM"},
		{"key in the bundle", func() {
			setData(v, sign, "certificate", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
		}, `holds a "PRIVATE KEY" PEM block`},
		{"garbage certificate", func() {
			setData(v, sign, "certificate", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		}, "the signed certificate: x509:"},
		{"trailing garbage", func() {
			setData(v, sign, "certificate", mustSign(caTemplate(td.IDString()), key.Public())+"\ntrailing")
		}, "holds something other than PEM"},
		{"too many certificates", func() {
			one := mustSign(caTemplate(td.IDString()), key.Public())
			setData(v, sign, "certificate", strings.Repeat(one+"\n", maxCerts+1))
		}, "holds more than 8 certificates"},
		{"no chain", func() { setData(v, "pki/cert/ca_chain", "certificate", nil) }, "the mount's CA chain is missing or not a string"},
		{"empty object", func() { v.SetRawResponse(sign, 200, []byte(`{}`)) }, "answered no data"},
		{"empty body", func() { v.SetRawResponse(sign, 200, []byte(``)) }, "answered no data"},
		{"null data", func() { v.SetRawResponse(sign, 200, []byte(`{"data": null}`)) }, "the signed certificate is missing or not a string"},
		{"chain answers nothing", func() { v.SetRawResponse("pki/cert/ca_chain", 404, []byte(`{"errors": []}`)) },
			"pki/cert/ca_chain answered nothing: is the PKI engine mounted at pki?"},
		{"chain read fails", func() { v.SetRawResponse("pki/cert/ca_chain", 400, []byte(`{"errors": ["unsupported path"]}`)) },
			"reading pki/cert/ca_chain: Vault answered 400: unsupported path"},
		{"Vault error", func() {
			v.SetRawResponse(sign, 400, []byte(`{"errors": ["ttl is larger than maximum allowed", "and another"]}`))
		}, "vault: pki/root/sign-intermediate: Vault answered 400: ttl is larger than maximum allowed; and another"},
		{"Vault error without text", func() { v.SetRawResponse(sign, 400, []byte(`{"errors": []}`)) },
			"Vault answered 400: Bad Request"},
		{"long Vault error", func() {
			v.SetRawResponse(sign, 400, []byte(`{"errors": ["`+strings.Repeat("x", 2000)+`"]}`))
		}, strings.Repeat("x", maxErrorText) + "..."},
		{"not JSON", func() { v.SetRawResponse(sign, 200, []byte(`<html>`)) }, "vault: pki/root/sign-intermediate: "},
		{"oversized body", func() {
			v.SetRawResponse(sign, 200, []byte(`{"data": {"certificate": "`+strings.Repeat("A", 2<<20)+`"}}`))
		}, "response body over 1048576 bytes"},
		{"oversized error", func() {
			v.SetRawResponse(sign, 400, []byte(`{"errors": ["`+strings.Repeat("A", 2<<20)+`"]}`))
		}, "response body over 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() {
				v.SetTamper(nil)
				v.SetRawResponse(sign, 0, nil)
				v.SetRawResponse("pki/cert/ca_chain", 0, nil)
			})
			tt.tamper()
			_, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: time.Hour})
			require.ErrorContains(t, err, tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "vault: "), err.Error())
			assert.NotContains(t, err.Error(), "\n", "one line")
			if strings.Contains(tt.want, "over 1048576") {
				assert.ErrorIs(t, err, errTooLarge)
			}
		})
	}
	// Untampered, it works.
	_, err = c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: time.Hour})
	require.NoError(t, err)
}

// TestMintX509CARefusesBadRequests: what the caller gives is checked
// before Vault is asked.
func TestMintX509CARefusesBadRequests(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{})}})
	csr, _ := newCSR(t)
	badSig := append([]byte(nil), csr...)
	badSig[len(badSig)-3] ^= 0xff
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		req  ca.X509CARequest
		want string
	}{
		{"no trust domain", t.Context(), ca.X509CARequest{CSR: csr}, "the trust domain is missing"},
		{"no CSR", t.Context(), ca.X509CARequest{TrustDomain: td}, "bad CSR"},
		{"garbage CSR", t.Context(), ca.X509CARequest{CSR: []byte("junk"), TrustDomain: td}, "bad CSR"},
		{"bad signature", t.Context(), ca.X509CARequest{CSR: badSig, TrustDomain: td}, "bad CSR"},
		{"negative TTL", t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: -time.Second}, "negative TTL"},
		{"canceled", canceled, ca.X509CARequest{CSR: csr, TrustDomain: td}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.MintX509CA(tt.ctx, tt.req)
			require.ErrorContains(t, err, tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "vault: "), err.Error())
		})
	}
	assert.Zero(t, v.Requests("pki/root/sign-intermediate"))
}

// TestAuthFailures: a login Vault refuses fails the mint with Vault's
// reason, and nothing is signed.
func TestAuthFailures(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{TLS: true})
	v.AddAppRole("approle", "role", "secret", vaulttest.TokenParams{TTL: time.Hour})
	v.AddKubernetesRole("kubernetes", "spire", "good.jwt", vaulttest.TokenParams{TTL: time.Hour})
	caCert, certFile, keyFile := clientCert(t)
	_, otherCert, otherKey := clientCert(t)
	v.AddCertRole("cert", "spire", caCert, vaulttest.TokenParams{TTL: time.Hour})
	expired := v.NewToken(vaulttest.TokenParams{TTL: time.Hour})
	v.RevokeToken(expired)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown token", Config{Auth: &TokenAuth{Token: "hvs.unknown"}}, "vault: token login: token lookup: Vault answered 403: permission denied"},
		{"revoked token", Config{Auth: &TokenAuth{Token: expired}}, "Vault answered 403: permission denied"},
		{"wrong secret ID", Config{Auth: &AppRoleAuth{RoleID: "role", SecretID: "wrong"}}, "vault: approle login: Vault answered 400: invalid role or secret ID"},
		{"no such AppRole mount", Config{Auth: &AppRoleAuth{Mount: "nowhere", RoleID: "role"}}, "Vault answered 404: no handler for route"},
		{"wrong service account token", Config{Auth: &KubernetesAuth{Role: "spire", TokenFile: writeFile(t, "t", []byte("bad.jwt"), 0o600)}},
			"vault: kubernetes login: Vault answered 403: permission denied"},
		{"wrong Kubernetes role", Config{Auth: &KubernetesAuth{Role: "other", TokenFile: writeFile(t, "t", []byte("good.jwt"), 0o600)}},
			`Vault answered 400: invalid role name "other"`},
		{"missing token file", Config{Auth: &KubernetesAuth{Role: "spire", TokenFile: "/nonexistent/token"}},
			"vault: kubernetes login: cannot read the service account token"},
		{"empty token file", Config{Auth: &KubernetesAuth{Role: "spire", TokenFile: writeFile(t, "t", []byte("\n"), 0o600)}},
			"is empty"},
		{"certificate of another CA", Config{Auth: &CertAuth{CertFile: otherCert, KeyFile: otherKey}},
			"vault: cert login: Vault answered 400: invalid certificate"},
		{"wrong certificate role", Config{Auth: &CertAuth{Role: "other", CertFile: certFile, KeyFile: keyFile}},
			"Vault answered 400: invalid certificate"},
		{"wrong namespace", Config{Namespace: "ns2", Auth: &AppRoleAuth{RoleID: "role", SecretID: "secret"}}, "Vault answered 403"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, v, tt.cfg)
			csr, _ := newCSR(t)
			_, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
			require.ErrorContains(t, err, tt.want)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
	assert.Zero(t, v.Requests("pki/root/sign-intermediate"))

	// A Vault whose certificate is not trusted is refused.
	c, err := New(Config{Address: v.URL(), Auth: &AppRoleAuth{RoleID: "role", SecretID: "secret"}})
	require.NoError(t, err)
	defer c.Close()
	csr, _ := newCSR(t)
	_, err = c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
	require.ErrorContains(t, err, "certificate")
	var uerr *url.Error
	assert.True(t, errors.As(err, &uerr), "a TLS failure: %v", err)

	// ... unless the operator said so.
	c, err = New(Config{Address: v.URL(), InsecureSkipVerify: true, Auth: &AppRoleAuth{RoleID: "role", SecretID: "secret"}})
	require.NoError(t, err)
	defer c.Close()
	_, err = c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
	require.NoError(t, err)
}

// TestServerErrorRetried: Vault's client retries a 5xx answer, as it
// does for a sealed or standby node.
func TestServerErrorRetried(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{})}})
	v.SetRawResponse("pki/root/sign-intermediate", http.StatusServiceUnavailable, []byte(`{"errors": ["Vault is sealed"]}`))
	csr, _ := newCSR(t)
	_, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
	require.ErrorContains(t, err, "Vault answered 503: Vault is sealed")
	assert.Equal(t, 3, v.Requests("pki/root/sign-intermediate"), "the request and two retries")
}
