package azureimds

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/spiffekit/spiffekit/internal/pemutil"
)

//go:embed roots/*.pem
var rootFiles embed.FS

// AzureRoots returns the root certificates the certificates that sign
// attested documents chain to: DigiCert Global Root G2 and Microsoft RSA
// Root Certificate Authority 2017. The slice is new at each call.
func AzureRoots() []*x509.Certificate {
	var out []*x509.Certificate
	for _, f := range []string{"roots/digicert-global-root-g2.pem", "roots/microsoft-rsa-root-ca-2017.pem"} {
		b, err := rootFiles.ReadFile(f)
		if err != nil {
			panic("azureimds: built-in root " + f + ": " + err.Error())
		}
		certs, err := pemutil.ParseCertificates(b)
		if err != nil {
			// The files are part of the package and checked by its tests.
			panic("azureimds: built-in root " + f + ": " + err.Error())
		}
		out = append(out, certs...)
	}
	return out
}

// maxIntermediate bounds an intermediate certificate fetched from a CA
// Issuers URL.
const maxIntermediate = 64 << 10

// maxCached bounds the intermediates kept.
const maxCached = 64

// intermediates fetches the certificate a leaf names as its issuer (its
// CA Issuers URL, whose host must be allowed) and keeps it by URL. What
// it fetches is trusted no more than a certificate in the message: it
// must chain to the roots.
type intermediates struct {
	hosts  []string
	client *http.Client

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

// fetch returns the intermediates of leaf's CA Issuers URLs whose host is
// allowed.
func (in *intermediates) fetch(ctx context.Context, leaf *x509.Certificate) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	var errs []error
	for _, raw := range leaf.IssuingCertificateURL {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !slices.Contains(in.hosts, u.Host) {
			continue
		}
		in.mu.Lock()
		c := in.certs[raw]
		in.mu.Unlock()
		if c == nil {
			if c, err = in.get(ctx, raw); err != nil {
				errs = append(errs, err)
				continue
			}
			in.mu.Lock()
			if len(in.certs) < maxCached {
				in.certs[raw] = c
			}
			in.mu.Unlock()
		}
		out = append(out, c)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// get fetches one certificate, DER or PEM.
func (in *intermediates) get(ctx context.Context, raw string) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, err
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("intermediate certificate: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIntermediate+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("intermediate certificate %s: %w", raw, err)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("intermediate certificate %s: status %d", raw, resp.StatusCode)
	case len(b) > maxIntermediate:
		return nil, fmt.Errorf("intermediate certificate %s: larger than %d bytes", raw, maxIntermediate)
	}
	if c, err := x509.ParseCertificate(b); err == nil {
		return c, nil
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil || len(certs) != 1 {
		return nil, fmt.Errorf("intermediate certificate %s is neither DER nor one PEM certificate", raw)
	}
	return certs[0], nil
}
