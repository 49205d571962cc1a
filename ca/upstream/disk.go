package upstream

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

// maxFileSize bounds the certificate and key files of a Disk.
const maxFileSize = 1 << 20

// DiskConfig describes the files of a [Disk].
type DiskConfig struct {
	// CertFile is a PEM file holding the upstream CA certificate first,
	// optionally followed by the certificates above it. Its last certificate
	// is the root placed in the trust bundle. Required.
	CertFile string

	// KeyFile is a PEM file holding the upstream CA's PKCS#8 private key.
	// Group and others must have no access to it. Required.
	KeyFile string

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Disk is a [ca.UpstreamAuthority] backed by a CA certificate and key read
// from disk once, by [LoadDisk]. It signs the rotating CA's certificates as
// intermediates below that certificate, capping their lifetime at its
// expiry. It is safe for concurrent use.
type Disk struct {
	authority *ca.X509Authority
	roots     []*x509.Certificate
}

var _ ca.UpstreamAuthority = (*Disk)(nil)

// LoadDisk reads the certificate and key files of cfg. The key must belong to
// the first certificate, and a key file that group or others may access is
// refused.
func LoadDisk(cfg DiskConfig) (*Disk, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("upstream: certificate or key file is missing")
	}
	certPEM, err := atomicfile.Read(cfg.CertFile, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("upstream: cannot read certificate: %w", err)
	}
	certs, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("upstream: cannot parse certificate: %w", err)
	}
	keyPEM, err := atomicfile.ReadPrivate(cfg.KeyFile, maxFileSize)
	if err != nil {
		return nil, fmt.Errorf("upstream: cannot read key: %w", err)
	}
	key, err := pemutil.ParsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("upstream: cannot parse key: %w", err)
	}
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{
		Signer:        key,
		Certificate:   certs[0],
		UpstreamChain: certs[1:],
		Now:           cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("upstream: invalid CA: %w", err)
	}
	return &Disk{authority: authority, roots: certs[len(certs)-1:]}, nil
}

// MintX509CA signs an intermediate CA certificate for the key in req.CSR.
// The chain it returns is the new CA, then the certificates of CertFile;
// Roots is the last certificate of CertFile.
func (u *Disk) MintX509CA(ctx context.Context, req ca.X509CARequest) (ca.X509CAResponse, error) {
	chain, err := u.authority.SignX509CA(ctx, ca.X509CAParams{
		CSR:         req.CSR,
		TrustDomain: req.TrustDomain,
		TTL:         req.TTL,
	})
	if err != nil {
		return ca.X509CAResponse{}, fmt.Errorf("upstream: %w", err)
	}
	return ca.X509CAResponse{Chain: chain, Roots: append([]*x509.Certificate(nil), u.roots...)}, nil
}
