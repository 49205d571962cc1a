package httpsendpoint

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// testCert returns a self-signed certificate for 127.0.0.1, and a pool
// holding it.
func testCert(t *testing.T) (*tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "endpoint"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	leaf, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// Property: the endpoint serves its handler over TLS 1.2 and 1.3 with the
// certificate of its callback, refuses older versions and suites without
// forward secrecy or AEAD, and stops gracefully when its context ends.
func TestServe(t *testing.T) {
	defer leaktest.Check(t)()
	cert, pool := testCert(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") })
	e, err := Listen("127.0.0.1:0", "test endpoint", h,
		func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- e.Serve(ctx) }()

	get := func(conf *tls.Config) (string, error) {
		tr := &http.Transport{TLSClientConfig: conf, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + e.Addr().String() + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	body, err := get(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13})
	require.NoError(t, err)
	assert.Equal(t, "hello", body)
	body, err = get(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
	require.NoError(t, err, "TLS 1.2")
	assert.Equal(t, "hello", body)
	_, err = get(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}) //nolint:gosec // the version it must refuse
	require.Error(t, err, "TLS 1.1 is refused")
	_, err = get(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	require.Error(t, err, "a suite without AEAD is refused")

	cancel()
	require.NoError(t, <-served, "a graceful stop is no error")
	require.ErrorIs(t, e.Close(), net.ErrClosed, "closed by the shutdown already")
}

// Property: a busy address, and a listener closed under Serve, are errors
// that name the endpoint.
func TestErrorsNameTheEndpoint(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	cert, _ := testCert(t)
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
	e, err := Listen("127.0.0.1:0", "test endpoint", http.NotFoundHandler(), getCert, log)
	require.NoError(t, err)
	_, err = Listen(e.Addr().String(), "other endpoint", http.NotFoundHandler(), getCert, log)
	require.ErrorContains(t, err, "server: other endpoint: listen tcp")
	require.NoError(t, e.Close())
	err = e.Serve(t.Context())
	require.ErrorContains(t, err, "server: test endpoint: ")
	require.ErrorIs(t, err, net.ErrClosed)
}
