package azureimds

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testSub    = "8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"
	otherSub   = "11111111-2222-3333-4444-555555555555"
	testVM     = "02aab8a4-74ef-476e-8182-f6d2ba4166a6"
)

// serverFor returns a server trusting ca's root, fetching intermediates
// from ca's AIA server, admitting testSub under testTenant.
func serverFor(t testing.TB, ca *azuretest.CA, mutate ...func(*ServerConfig)) *Server {
	t.Helper()
	u, err := url.Parse(ca.AIA.URL)
	require.NoError(t, err)
	c := ServerConfig{
		Tenants:     map[string]TenantConfig{testTenant: {Subscriptions: []string{testSub}}},
		Roots:       []*x509.Certificate{ca.Root},
		IssuerHosts: []string{u.Host},
	}
	for _, m := range mutate {
		m(&c)
	}
	s, err := NewServer(c)
	require.NoError(t, err)
	return s
}

// answer returns a challenger that answers with the document sign makes
// for the nonce, under tenant.
func answer(t testing.TB, tenant string, sign func(nonce string) string) attest.Challenger {
	return func(_ context.Context, nonce []byte) ([]byte, error) {
		return json.Marshal(Response{Document: Document{Encoding: "pkcs7", Signature: sign(string(nonce))}, Metadata: Metadata{AgentDomain: tenant}})
	}
}

func requireRejected(t *testing.T, err error, contains string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	require.Contains(t, err.Error(), contains)
}

func TestAttestThroughIMDS(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the servers' cleanup
	ca := azuretest.NewCA(t, "metadata.azure.com")
	imds := azuretest.StartIMDS(t)
	imds.SetDocument(func(nonce string) string { return ca.Sign(t, azuretest.Document(t, nonce, testVM, testSub)) })

	client, err := NewClient(ClientConfig{TenantDomain: testTenant, Endpoint: imds.URL})
	require.NoError(t, err)
	require.Equal(t, Type, client.Type())
	payload, err := client.Payload(t.Context())
	require.NoError(t, err)

	srv := serverFor(t, ca)
	require.Equal(t, Type, srv.Type())
	res, err := srv.Attest(t.Context(), td, payload, client.Respond)
	require.NoError(t, err)
	require.Equal(t, "spiffe://example.org/spiffekit/agent/azure_imds/"+testTenant+"/"+testSub+"/"+testVM, res.AgentID.String())
	require.False(t, res.CanReattest)
	want := attest.NewSelectors(
		attest.Selector{Type: Type, Value: "tenant:" + testTenant},
		attest.Selector{Type: Type, Value: "subscription-id:" + testSub},
		attest.Selector{Type: Type, Value: "vm-id:" + testVM},
	)
	require.True(t, want.Equal(res.Selectors), "got %v", res.Selectors)
	require.Zero(t, imds.Refused())
	require.Len(t, imds.Nonces(), 1)

	// Another attestation: a new nonce, the intermediate from the cache.
	_, err = srv.Attest(t.Context(), td, payload, client.Respond)
	require.NoError(t, err)
	nonces := imds.Nonces()
	require.Len(t, nonces, 2)
	require.NotEqual(t, nonces[0], nonces[1])
	require.Equal(t, 1, ca.AIAFetches())
}

// newAttacker returns a key of the attacker's and a self-signed
// certificate for metadata.azure.com, with the issuer name and serial of
// like, if not nil.
func newAttacker(t *testing.T, like *x509.Certificate) (*x509.Certificate, *rsa.PrivateKey) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(99), Subject: pkix.Name{CommonName: "metadata.azure.com"}, DNSNames: []string{"metadata.azure.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
	}
	parent := tmpl
	if like != nil {
		// Issued "by" the Azure leaf's issuer, with its serial: only the
		// names match, the signature on it is the attacker's.
		tmpl.SerialNumber = like.SerialNumber
		parent = &x509.Certificate{Subject: like.Issuer, SerialNumber: big.NewInt(1)}
		parent.RawSubject = like.RawIssuer
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

// TestAttackSignerBag is the attack SPIRE 1.15.2 fixed: the message's
// certificate bag holds Azure's genuine leaf first, while the content is
// signed by a key of the attacker's whose certificate comes after it. The
// server checked the chain of the first certificate and verified the
// signature with the signer's. Here the signer is resolved first, and its
// certificate is the one checked.
func TestAttackSignerBag(t *testing.T) {
	ca := azuretest.NewCA(t, "metadata.azure.com")
	srv := serverFor(t, ca)
	attacker, key := newAttacker(t, nil)
	_, err := srv.Attest(t.Context(), td, nil, answer(t, testTenant, func(nonce string) string {
		return azuretest.SignWith(t, azuretest.Document(t, nonce, testVM, testSub), attacker, key, ca.Leaf, ca.Intermediate)
	}))
	requireRejected(t, err, "the signer's certificate (CN=metadata.azure.com) does not chain to the roots")

	// The attacker's certificate under the Azure leaf's issuer and serial,
	// after the leaf: the leaf is the signer found, and the signature is
	// not its key's.
	twin, twinKey := newAttacker(t, ca.Leaf)
	_, err = srv.Attest(t.Context(), td, nil, answer(t, testTenant, func(nonce string) string {
		return azuretest.SignWith(t, azuretest.Document(t, nonce, testVM, testSub), twin, twinKey, ca.Leaf)
	}))
	requireRejected(t, err, "the signature does not verify")

	// The same twin alone (Azure's leaf not in the message): it is the
	// signer, and it does not chain.
	_, err = srv.Attest(t.Context(), td, nil, answer(t, testTenant, func(nonce string) string {
		return azuretest.SignWith(t, azuretest.Document(t, nonce, testVM, testSub), twin, twinKey)
	}))
	requireRejected(t, err, "does not chain to the roots")

	// The genuine message passes the same server.
	_, err = srv.Attest(t.Context(), td, nil, answer(t, testTenant, func(nonce string) string {
		return ca.Sign(t, azuretest.Document(t, nonce, testVM, testSub))
	}))
	require.NoError(t, err)
}

// TestAttacks tries to break the other rules: each attempt is refused.
func TestAttacks(t *testing.T) {
	ca := azuretest.NewCA(t, "metadata.azure.com")
	other := azuretest.NewCA(t, "evil.example") // chains to another root
	wrongName := azuretest.NewCA(t, "other.azure.com")
	srv := serverFor(t, ca, func(c *ServerConfig) {
		c.Tenants["contoso.onmicrosoft.com"] = TenantConfig{Subscriptions: []string{otherSub}}
		// wrongName's chain is trusted too, to test the name check alone.
		c.Roots = append(c.Roots, wrongName.Root)
		u, _ := url.Parse(wrongName.AIA.URL)
		c.IssuerHosts = append(c.IssuerHosts, u.Host)
	})
	sign := func(doc func(nonce string) []byte) func(string) string {
		return func(nonce string) string { return ca.Sign(t, doc(nonce)) }
	}
	docWith := func(mutate func(map[string]any)) func(nonce string) []byte {
		return func(nonce string) []byte {
			var m map[string]any
			require.NoError(t, json.Unmarshal(azuretest.Document(t, nonce, testVM, testSub), &m))
			mutate(m)
			b, err := json.Marshal(m)
			require.NoError(t, err)
			return b
		}
	}
	now := time.Now().UTC()
	for _, tc := range []struct {
		name   string
		tenant string
		sign   func(nonce string) string
		err    string
	}{
		{"replayed document (another nonce)", testTenant, sign(func(string) []byte { return azuretest.Document(t, "ABC234", testVM, testSub) }), "is for nonce ABC234, not the one sent"},
		{"no nonce", testTenant, sign(func(string) []byte { return azuretest.Document(t, "", testVM, testSub) }), "not the one sent"},
		{"subscription not allowed", testTenant, sign(func(n string) []byte { return azuretest.Document(t, n, testVM, otherSub) }), "subscription " + otherSub + " is not allowed for tenant " + testTenant},
		{"another tenant's subscription", "contoso.onmicrosoft.com", sign(func(n string) []byte { return azuretest.Document(t, n, testVM, testSub) }), "is not allowed for tenant contoso.onmicrosoft.com"},
		{"tenant not allowed", "fabrikam.onmicrosoft.com", sign(func(n string) []byte { return azuretest.Document(t, n, testVM, testSub) }), "tenant fabrikam.onmicrosoft.com is not allowed"},
		{"no tenant", "", sign(func(n string) []byte { return azuretest.Document(t, n, testVM, testSub) }), "tenant  is not allowed"},
		{"another CA", testTenant, func(n string) string { return other.Sign(t, azuretest.Document(t, n, testVM, testSub)) }, "does not chain to the roots"},
		{"another CA, its chain in the message", testTenant, func(n string) string {
			return azuretest.SignWith(t, azuretest.Document(t, n, testVM, testSub), other.Leaf, other.LeafKey, other.Intermediate, other.Root)
		}, "does not chain to the roots"},
		{"a trusted chain for another name", testTenant, func(n string) string { return wrongName.Sign(t, azuretest.Document(t, n, testVM, testSub)) }, "names none of metadata.azure.com"},
		{"the intermediate signs", testTenant, func(n string) string {
			return azuretest.SignWith(t, azuretest.Document(t, n, testVM, testSub), ca.Intermediate, ca.IntKey)
		}, "names none of"},
		{"expired", testTenant, sign(docWith(func(m map[string]any) {
			m["timeStamp"] = map[string]string{"createdOn": now.Add(-7 * time.Hour).Format(timeFormat), "expiresOn": now.Add(-time.Hour).Format(timeFormat)}
		})), "document expired"},
		{"created in the future", testTenant, sign(docWith(func(m map[string]any) {
			m["timeStamp"] = map[string]string{"createdOn": now.Add(time.Hour).Format(timeFormat), "expiresOn": now.Add(7 * time.Hour).Format(timeFormat)}
		})), "created in the future"},
		{"no timestamps", testTenant, sign(docWith(func(m map[string]any) { delete(m, "timeStamp") })), "createdOn  is not a time"},
		{"bad expiry", testTenant, sign(docWith(func(m map[string]any) {
			m["timeStamp"] = map[string]string{"createdOn": now.Format(timeFormat), "expiresOn": "tomorrow"}
		})), "expiresOn tomorrow is not a time"},
		{"VM ID a path", testTenant, sign(docWith(func(m map[string]any) { m["vmId"] = "../server" })), "VM ID ../server is not a GUID"},
		{"subscription in upper case", testTenant, sign(docWith(func(m map[string]any) { m["subscriptionId"] = strings.ToUpper(testSub) })), "is not a GUID"},
		{"content not JSON", testTenant, sign(func(string) []byte { return []byte("not json") }), "not a JSON object"},
		{"content not UTF-8", testTenant, sign(func(string) []byte { return []byte("{\"a\":\"\xff\"}") }), "not UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Attest(t.Context(), td, []byte("non_empty_payload"), answer(t, tc.tenant, tc.sign))
			requireRejected(t, err, tc.err)
		})
	}
}

func TestMalformedAnswers(t *testing.T) {
	ca := azuretest.NewCA(t, "metadata.azure.com")
	srv := serverFor(t, ca)
	msg := func(f func(sd *pkcs7.SignedData)) string {
		sd, err := pkcs7.NewSignedData(azuretest.Document(t, "x", testVM, testSub))
		require.NoError(t, err)
		f(sd)
		der, err := sd.Finish()
		require.NoError(t, err)
		return base64.StdEncoding.EncodeToString(der)
	}
	sha1 := msg(func(sd *pkcs7.SignedData) {
		sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA1)
		require.NoError(t, sd.AddSigner(ca.Leaf, ca.LeafKey, pkcs7.SignerInfoConfig{}))
	})
	two := msg(func(sd *pkcs7.SignedData) {
		sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
		require.NoError(t, sd.AddSigner(ca.Leaf, ca.LeafKey, pkcs7.SignerInfoConfig{}))
		require.NoError(t, sd.AddSigner(ca.Leaf, ca.LeafKey, pkcs7.SignerInfoConfig{}))
	})
	detached := msg(func(sd *pkcs7.SignedData) {
		sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
		require.NoError(t, sd.AddSigner(ca.Leaf, ca.LeafKey, pkcs7.SignerInfoConfig{}))
		sd.Detach()
	})
	doc := func(sig string) string {
		b, err := json.Marshal(Response{Document: Document{Encoding: "pkcs7", Signature: sig}, Metadata: Metadata{AgentDomain: testTenant}})
		require.NoError(t, err)
		return string(b)
	}
	for _, tc := range []struct{ name, answer, err string }{
		{"empty", "", "response is empty"},
		{"not JSON", "document", "not a JSON object"},
		{"trailing data", doc("x") + " {}", "data after its JSON object"},
		{"too large", `{"document":{"signature":"` + strings.Repeat("a", attest.MaxNodePayload) + `"}}`, "larger than 65536 bytes"},
		{"encoding base64", `{"document":{"encoding":"base64","signature":"x"}}`, `encoding is "base64", want pkcs7`},
		{"no signature", `{"document":{"encoding":"pkcs7"}}`, "no signature"},
		{"huge signature", doc(strings.Repeat("a", MaxSignatureSize+1)), "signature is larger than 16384 bytes"},
		{"not base64", doc("!!!"), "not base64"},
		{"not PKCS #7", doc(base64.StdEncoding.EncodeToString([]byte("garbage"))), "does not parse"},
		{"a certificate", doc(base64.StdEncoding.EncodeToString(ca.Leaf.Raw)), "does not parse"},
		{"detached", doc(detached), "holds no document"},
		{"two signers", doc(two), "2 signers"},
		{"SHA-1", doc(sha1), "want SHA-256, -384 or -512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Attest(t.Context(), td, nil, func(context.Context, []byte) ([]byte, error) { return []byte(tc.answer), nil })
			requireRejected(t, err, tc.err)
		})
	}

	_, err := srv.Attest(t.Context(), td, make([]byte, maxFirstPayload+1), answer(t, testTenant, func(string) string { return "" }))
	requireRejected(t, err, "first message is larger than 1024 bytes")
	_, err = srv.Attest(t.Context(), td, nil, nil)
	require.ErrorContains(t, err, "no challenger")
	_, err = srv.Attest(t.Context(), td, nil, func(context.Context, []byte) ([]byte, error) { return nil, errors.New("gone") })
	require.ErrorContains(t, err, "azureimds: challenge: gone")
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
	_, err = srv.Attest(t.Context(), spiffeid.TrustDomain{}, nil, nil)
	require.ErrorContains(t, err, "no trust domain")
}

// TestIntermediates: without a fetch the chain needs the intermediate from
// the configuration or the message; a CA Issuers URL on a host not
// allowed is never fetched.
func TestIntermediates(t *testing.T) {
	ca := azuretest.NewCA(t, "metadata.azure.com")
	good := answer(t, testTenant, func(n string) string { return ca.Sign(t, azuretest.Document(t, n, testVM, testSub)) })

	noFetch := serverFor(t, ca, func(c *ServerConfig) { c.IssuerHosts = []string{} })
	_, err := noFetch.Attest(t.Context(), td, nil, good)
	requireRejected(t, err, "does not chain to the roots")
	require.Zero(t, ca.AIAFetches())

	configured := serverFor(t, ca, func(c *ServerConfig) {
		c.IssuerHosts = []string{}
		c.Intermediates = []*x509.Certificate{ca.Intermediate}
	})
	_, err = configured.Attest(t.Context(), td, nil, good)
	require.NoError(t, err)

	_, err = noFetch.Attest(t.Context(), td, nil, answer(t, testTenant, func(n string) string {
		return azuretest.SignWith(t, azuretest.Document(t, n, testVM, testSub), ca.Leaf, ca.LeafKey, ca.Intermediate)
	}))
	require.NoError(t, err)
	require.Zero(t, ca.AIAFetches())

	// The AIA server is down: the fetch error is told.
	down := serverFor(t, ca)
	ca.AIA.Close()
	_, err = down.Attest(t.Context(), td, nil, good)
	requireRejected(t, err, "fetching its intermediate")
}

func TestFetchIntermediate(t *testing.T) {
	ca := azuretest.NewCA(t, "metadata.azure.com")
	srv := serverFor(t, ca)
	u := ca.AIA.URL
	leaf := func(urls ...string) *x509.Certificate { return &x509.Certificate{IssuingCertificateURL: urls} }
	certs, err := srv.fetcher.fetch(t.Context(), leaf("::bad", "ftp://x/y", "http://www.example.com/x", u+"/intermediate.crt"))
	require.NoError(t, err)
	require.Len(t, certs, 1)
	require.True(t, certs[0].Equal(ca.Intermediate))
	_, err = srv.fetcher.fetch(t.Context(), leaf(u+"/missing"))
	require.ErrorContains(t, err, "status 404")
	certs, err = srv.fetcher.fetch(t.Context(), leaf())
	require.NoError(t, err)
	require.Empty(t, certs)
}

func TestNewServerConfiguration(t *testing.T) {
	sub := []string{testSub}
	for _, tc := range []struct {
		name string
		c    ServerConfig
		err  string
	}{
		{"no tenant", ServerConfig{}, "tenant allow-list is required"},
		{"bad tenant", ServerConfig{Tenants: map[string]TenantConfig{"Contoso": {Subscriptions: sub}}}, "not a tenant ID or domain"},
		{"no subscription", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}}, "has no subscription"},
		{"bad subscription", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {Subscriptions: []string{"x"}}}}, "is not a subscription ID"},
		{"too many subscriptions", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {Subscriptions: make([]string, maxListItems+1)}}}, "more than 4096"},
		{"no root", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {Subscriptions: sub}}, Roots: []*x509.Certificate{}}, "no root"},
		{"nil root", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {Subscriptions: sub}}, Roots: []*x509.Certificate{nil}}, "root 0 is nil"},
		{"nil intermediate", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {Subscriptions: sub}}, Intermediates: []*x509.Certificate{nil}}, "intermediate 0 is nil"},
		{"no name", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {Subscriptions: sub}}, SignerNames: []string{}}, "no signer name"},
		{"too many tenants", ServerConfig{Tenants: func() map[string]TenantConfig {
			m := map[string]TenantConfig{}
			for i := range maxListItems + 1 {
				m[string(rune(i))] = TenantConfig{}
			}
			return m
		}()}, "more than 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.c)
			require.ErrorContains(t, err, tc.err)
		})
	}
	s, err := NewServer(ServerConfig{Tenants: map[string]TenantConfig{"contoso.onmicrosoft.com": {Subscriptions: sub}}})
	require.NoError(t, err)
	require.Equal(t, DefaultSignerNames, s.names)
	require.Equal(t, DefaultIssuerHosts, s.fetcher.hosts)
}

func TestAzureRoots(t *testing.T) {
	roots := AzureRoots()
	require.Len(t, roots, 2)
	require.Equal(t, "DigiCert Global Root G2", roots[0].Subject.CommonName)
	require.Equal(t, "Microsoft RSA Root Certificate Authority 2017", roots[1].Subject.CommonName)
	for _, r := range roots {
		require.True(t, r.IsCA)
		require.True(t, r.NotAfter.After(time.Date(2037, 1, 1, 0, 0, 0, 0, time.UTC)))
	}
	// The default server trusts them, and so refuses a test chain.
	ca := azuretest.NewCA(t, "metadata.azure.com")
	srv, err := NewServer(ServerConfig{Tenants: map[string]TenantConfig{testTenant: {Subscriptions: []string{testSub}}}, IssuerHosts: []string{}})
	require.NoError(t, err)
	_, err = srv.Attest(t.Context(), td, nil, answer(t, testTenant, func(n string) string { return ca.Sign(t, azuretest.Document(t, n, testVM, testSub)) }))
	requireRejected(t, err, "does not chain to the roots")
}

func TestClientConfiguration(t *testing.T) {
	for _, d := range []string{"", "Contoso.com", "contoso", "a/b"} {
		_, err := NewClient(ClientConfig{TenantDomain: d})
		require.ErrorContains(t, err, "want a tenant ID or domain", d)
	}
	_, err := NewClient(ClientConfig{TenantDomain: testTenant, Timeout: -1})
	require.ErrorContains(t, err, "negative timeout")
	_, err = NewClient(ClientConfig{TenantDomain: testTenant, Endpoint: "169.254.169.254"})
	require.ErrorContains(t, err, "want an http:// or https:// URL")
	c, err := NewClient(ClientConfig{TenantDomain: "contoso.onmicrosoft.com"})
	require.NoError(t, err)
	require.Equal(t, DefaultTimeout, c.timeout)
}

// TestClientHostileService: a metadata service that floods, stalls, or
// answers with something else than a document, and a server that sends a
// nonce the service would not take, end the answer with an error.
func TestClientHostileService(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the servers' cleanup
	respond := func(t *testing.T, imds *azuretest.IMDS, nonce string, timeout time.Duration) error {
		c, err := NewClient(ClientConfig{TenantDomain: testTenant, Endpoint: imds.URL, Timeout: timeout})
		require.NoError(t, err)
		_, err = c.Respond(t.Context(), []byte(nonce))
		return err
	}
	body := func(t *testing.T, b string) *azuretest.IMDS {
		imds := azuretest.StartIMDS(t)
		imds.SetBody(azuretest.AttestedPath, b)
		return imds
	}
	for _, nonce := range []string{"", "a/b", "a b", strings.Repeat("a", 65)} {
		require.ErrorContains(t, respond(t, azuretest.StartIMDS(t), nonce, 0), "nonce is not", nonce)
	}
	require.ErrorContains(t, respond(t, azuretest.StartIMDS(t), "abc", 0), "status 404")
	require.ErrorContains(t, respond(t, body(t, `{"encoding":"pkcs7","signature":"`+strings.Repeat("a", 1<<20)+`"}`), "abc", 0), "larger than 32768 bytes")
	require.ErrorContains(t, respond(t, body(t, `{"encoding":"pkcs7","signature":"`+strings.Repeat("a", MaxSignatureSize+1)+`"}`), "abc", 0), "larger than 16384 bytes")
	require.ErrorContains(t, respond(t, body(t, `<html>`), "abc", 0), "not JSON")
	require.ErrorContains(t, respond(t, body(t, `{"encoding":"base64","signature":"x"}`), "abc", 0), `encoding is "base64"`)
	require.ErrorContains(t, respond(t, body(t, `{"encoding":"pkcs7"}`), "abc", 0), "no signature")
	hang := azuretest.StartIMDS(t)
	hang.SetHang(azuretest.AttestedPath)
	require.ErrorContains(t, respond(t, hang, "abc", 300*time.Millisecond), "fetching the attested document")
	require.Positive(t, hang.HungCalls())
}
