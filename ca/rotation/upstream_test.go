package rotation

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/upstream"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeUpstream makes an upstream root CA and writes its files.
func writeUpstream(t *testing.T, now func() time.Time, ttl time.Duration) (certFile, keyFile string, root *x509.Certificate) {
	t.Helper()
	key := workloadKey(t)
	root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td, TTL: ttl, Now: now})
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "upstream.crt"), filepath.Join(dir, "upstream.key")
	require.NoError(t, os.WriteFile(certFile, pemutil.EncodeCertificates([]*x509.Certificate{root}), 0o644))
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	return certFile, keyFile, root
}

func TestDiskUpstream(t *testing.T) {
	clk := newClock(t0)
	certFile, keyFile, root := writeUpstream(t, clk.Now, 30*24*time.Hour)
	up, err := upstream.LoadDisk(upstream.DiskConfig{CertFile: certFile, KeyFile: keyFile, Now: clk.Now})
	require.NoError(t, err)
	m := newManager(t, Config{Now: clk.Now, Upstream: up})

	// The bundle holds the upstream root; our CA is an intermediate.
	authorities := m.Bundle().X509Authorities()
	require.Len(t, authorities, 1)
	assert.Equal(t, root.Raw, authorities[0].Raw)
	caCert := m.X509Authority().Certificate()
	require.NoError(t, caCert.CheckSignatureFrom(root))
	assert.True(t, caCert.IsCA)

	chain := mintSVID(t, m, 0)
	require.Len(t, chain, 2, "leaf and intermediate; the root travels in the bundle")
	require.NoError(t, verifyAt(m, chain, clk.Now()))

	// Rotation changes intermediates, not the X.509 roots of the bundle.
	for range 6 {
		clk.Add(12 * time.Hour)
		require.NoError(t, m.Rotate(t.Context()))
		require.NoError(t, verifyAt(m, mintSVID(t, m, 0), clk.Now()))
		require.NoError(t, verifyAt(m, chain, chain[0].NotAfter.Add(-time.Second)))
		authorities := m.Bundle().X509Authorities()
		require.Len(t, authorities, 1)
		assert.Equal(t, root.Raw, authorities[0].Raw)
	}
	assert.NotEqual(t, caCert.Raw, m.X509Authority().Certificate().Raw)

	// The upstream caps the CA lifetime at its own expiry.
	clk.Set(root.NotAfter.Add(-3 * time.Hour))
	require.NoError(t, m.Rotate(t.Context()))
	assert.False(t, m.X509Authority().Certificate().NotAfter.After(root.NotAfter))
}

// upstreamFunc adapts a function to ca.UpstreamAuthority, to feed the
// manager bad answers.
type upstreamFunc func(context.Context, ca.X509CARequest) (ca.X509CAResponse, error)

func (f upstreamFunc) MintX509CA(ctx context.Context, req ca.X509CARequest) (ca.X509CAResponse, error) {
	return f(ctx, req)
}

func TestBadUpstream(t *testing.T) {
	clk := newClock(t0)
	certFile, keyFile, root := writeUpstream(t, clk.Now, 0)
	good, err := upstream.LoadDisk(upstream.DiskConfig{CertFile: certFile, KeyFile: keyFile, Now: clk.Now})
	require.NoError(t, err)
	_, _, otherRoot := writeUpstream(t, clk.Now, 0)

	tests := []struct {
		name string
		up   upstreamFunc
	}{
		{"error", func(context.Context, ca.X509CARequest) (ca.X509CAResponse, error) {
			return ca.X509CAResponse{}, errors.New("offline")
		}},
		{"empty", func(context.Context, ca.X509CARequest) (ca.X509CAResponse, error) {
			return ca.X509CAResponse{}, nil
		}},
		{"wrong root", func(ctx context.Context, req ca.X509CARequest) (ca.X509CAResponse, error) {
			resp, err := good.MintX509CA(ctx, req)
			resp.Roots = []*x509.Certificate{otherRoot}
			return resp, err
		}},
		{"wrong key", func(ctx context.Context, req ca.X509CARequest) (ca.X509CAResponse, error) {
			req.CSR = nil
			req.PublicKey = nil
			other, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, workloadKey(t))
			req.CSR = other
			return good.MintX509CA(ctx, req)
		}},
		{"the root itself", func(context.Context, ca.X509CARequest) (ca.X509CAResponse, error) {
			return ca.X509CAResponse{Chain: []*x509.Certificate{root}, Roots: []*x509.Certificate{root}}, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), Config{TrustDomain: td, Now: clk.Now, Upstream: tt.up})
			require.ErrorContains(t, err, "rotation: ")
		})
	}
}
