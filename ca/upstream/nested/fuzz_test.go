package nested

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// FuzzCheck feeds the checks of an upstream server's answer with
// arbitrary certificates: they never panic, and what they accept is a CA
// of the trust domain for the requested key.
func FuzzCheck(f *testing.F) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	root := testca.New(f, td)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: root.Key(), Certificate: root.Cert()})
	if err != nil {
		f.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{td.ID().URL()}}, key)
	if err != nil {
		f.Fatal(err)
	}
	chain, err := authority.SignX509CA(f.Context(), ca.X509CAParams{CSR: csr})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(chain[0].Raw, chain[1].Raw, root.Cert().Raw)
	f.Add(chain[0].Raw, []byte{}, root.Cert().Raw)
	f.Add(root.Cert().Raw, []byte{0x30}, chain[0].Raw)
	a := &Authority{cfg: Config{TrustDomain: td}, now: time.Now}
	req := ca.X509CARequest{CSR: csr, PublicKey: key.Public(), TrustDomain: td}
	want, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, first, second, rootDER []byte) {
		resp := &nodepb.MintX509CAResponse{CertChain: [][]byte{first}, Roots: [][]byte{rootDER}}
		if len(second) > 0 {
			resp.CertChain = append(resp.CertChain, second)
		}
		out, err := a.check(req, resp)
		if err != nil {
			return
		}
		got, err := x509.MarshalPKIXPublicKey(out.Chain[0].PublicKey)
		if err != nil || !bytes.Equal(got, want) || !out.Chain[0].IsCA || out.Chain[0].URIs[0].String() != td.IDString() {
			t.Fatalf("accepted a CA that is not the one asked for: %v", out.Chain[0].Subject)
		}
	})
}
