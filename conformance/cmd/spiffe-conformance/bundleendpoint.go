package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"os"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// bundleEndpointOpts are the flags of the bundle-endpoint mode.
type bundleEndpointOpts struct {
	cfg            kit.BundleEndpointConfig
	roots          string
	endpointBundle string
}

func bundleEndpointFlags(fs *flag.FlagSet) *bundleEndpointOpts {
	b := &bundleEndpointOpts{}
	fs.StringVar(&b.cfg.URL, "url", "", "the bundle endpoint's URL (required)")
	fs.StringVar(&b.cfg.TrustDomain, "trust-domain", "", "the trust domain whose bundle it serves (required)")
	fs.StringVar(&b.cfg.Profile, "profile", "", "https_web or https_spiffe (required)")
	fs.StringVar(&b.roots, "roots", "", "https_web: PEM roots the server certificate must chain to (default: the system's)")
	fs.StringVar(&b.cfg.EndpointID, "endpoint-id", "", "https_spiffe: the SPIFFE ID the server must present")
	fs.StringVar(&b.endpointBundle, "endpoint-bundle", "", "https_spiffe: the X.509 authorities of that ID's trust domain (PEM, or a SPIFFE bundle document)")
	fs.DurationVar(&b.cfg.Timeout, "timeout", kit.DefaultTimeout, "bound on every request")
	fs.DurationVar(&b.cfg.RotationWait, "rotation-wait", 0, "fetch again for this long, until the keys change, to check the sequence (0: do not wait)")
	fs.DurationVar(&b.cfg.PollInterval, "poll-interval", kit.DefaultPollInterval, "the interval of those fetches")
	return b
}

// check runs the bundle-endpoint mode.
func (b *bundleEndpointOpts) check(ctx context.Context) (*kit.Report, error) {
	if b.cfg.URL == "" {
		return nil, fmt.Errorf("-url is required")
	}
	if b.roots != "" {
		var err error
		if b.cfg.WebRoots, err = loadRoots(b.roots); err != nil {
			return nil, err
		}
	}
	if b.endpointBundle != "" {
		var err error
		if b.cfg.EndpointBundle, err = readX509Authorities(b.endpointBundle); err != nil {
			return nil, fmt.Errorf("%s: %w", b.endpointBundle, err)
		}
	}
	return kit.CheckBundleEndpoint(ctx, b.cfg)
}

// loadRoots reads a PEM file of CA certificates into a pool (-roots).
func loadRoots(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	certs, err := kit.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
