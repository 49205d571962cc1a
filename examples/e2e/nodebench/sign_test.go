package nodebench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// signSetup is a server, an attested agent's client, n entries parented by
// the agent, and one CSR per entry.
type signSetup struct {
	e    *env
	cli  *nodeapi.Client
	reqs []nodeapi.X509SVIDRequest
}

func newSignSetup(tb testing.TB, n int) *signSetup {
	tb.Helper()
	e := newEnv(tb, envConfig{DBDir: shmDir(tb)})
	cli, agentID := e.attestClient(tb)
	entries := createEntries(tb, e.store, agentID, "/sign", n, ourUID)
	e.waitIndexed(tb)
	reqs := make([]nodeapi.X509SVIDRequest, n)
	for i, en := range entries {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(tb, err)
		csr, err := nodeapi.NewCSR(key, en.SPIFFEID)
		require.NoError(tb, err)
		reqs[i] = nodeapi.X509SVIDRequest{EntryID: en.ID, CSR: csr}
	}
	return &signSetup{e: e, cli: cli, reqs: reqs}
}

func (s *signSetup) sign(tb testing.TB, batch int) []nodeapi.X509SVIDResult {
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	res, err := s.cli.SignX509SVIDs(ctx, s.reqs[:batch])
	require.NoError(tb, err)
	return res
}

func TestSignThroughNodeProtocol(t *testing.T) {
	s := newSignSetup(t, 10)
	res := s.sign(t, 10)
	require.Len(t, res, 10)
	for i, r := range res {
		require.NoError(t, r.Err)
		id, _, err := x509svid.Verify(r.Certificates, s.e.ca.Bundle())
		require.NoError(t, err)
		csr, err := x509.ParseCertificateRequest(s.reqs[i].CSR)
		require.NoError(t, err)
		assert.Equal(t, csr.URIs[0].String(), id.String())
	}
	raw := newRawSigner(t)
	_, err := raw.sign(raw.csr)
	require.NoError(t, err)
}

// BenchmarkSignX509SVIDs signs batches of X509-SVIDs from CSRs through the
// node protocol: an attested agent's client over loopback mutual TLS, the
// server checking authorization and each CSR, signing on every core.
// One op is one batch; svids/s is the figure.
func BenchmarkSignX509SVIDs(b *testing.B) {
	s := newSignSetup(b, nodeapi.MaxBatch)
	s.sign(b, 10) // warm up the connection
	for _, batch := range []int{100, 500, 1000} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.sign(b, batch)
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "svids/s")
		})
	}
}

// rawSigner is the least work a CA must do per X509-SVID: check the CSR's
// signature and sign a certificate, with the same ECDSA P-256 CA key type
// and leaf shape as ours.
type rawSigner struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	csr    []byte
	id     *url.URL
}

func newRawSigner(tb testing.TB) *rawSigner {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		SubjectKeyId: []byte{1, 2, 3, 4},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	require.NoError(tb, err)
	caCert, err := x509.ParseCertificate(der)
	require.NoError(tb, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	id := spiffeid.RequireFromPath(td, "/raw")
	csr, err := nodeapi.NewCSR(key, id)
	require.NoError(tb, err)
	return &rawSigner{caCert: caCert, caKey: caKey, csr: csr, id: id.URL()}
}

func (r *rawSigner) sign(csrDER []byte) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial, NotBefore: now.Add(-10 * time.Second), NotAfter: now.Add(time.Hour),
		URIs: []*url.URL{r.id}, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		AuthorityKeyId: r.caCert.SubjectKeyId,
	}, r.caCert, csr.PublicKey, r.caKey)
}

// BenchmarkRawSign is the machine's limit for BenchmarkSignX509SVIDs: CSR
// parse and signature check plus x509.CreateCertificate, on every core.
func BenchmarkRawSign(b *testing.B) {
	r := newRawSigner(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.sign(r.csr); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "svids/s")
}

// BenchmarkAuthoritySign is our CA's SignX509SVID from a CSR, in process,
// on every core: the node protocol's cost without gRPC, TLS and protobuf.
func BenchmarkAuthoritySign(b *testing.B) {
	s := newSignSetup(b, 1)
	csr := s.reqs[0].CSR
	parsed, err := x509.ParseCertificateRequest(csr)
	require.NoError(b, err)
	id, err := spiffeid.FromURI(parsed.URIs[0])
	require.NoError(b, err)
	authority := s.e.ca.X509Authority()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := authority.SignX509SVID(context.Background(), ca.X509SVIDParams{CSR: csr, ID: id}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "svids/s")
}

// BenchmarkP256 measures the ECDSA P-256 operations an X509-SVID costs the
// server (two verifications: the CSR's signature and the check
// x509.CreateCertificate makes of its own signature; one signature), on one
// goroutine, to explain the ceiling of BenchmarkRawSign.
func BenchmarkP256(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	digest := make([]byte, 32)
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest)
	require.NoError(b, err)
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := ecdsa.SignASN1(rand.Reader, key, digest); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if !ecdsa.VerifyASN1(&key.PublicKey, digest, sig) {
				b.Fatal("verify failed")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	})
}
