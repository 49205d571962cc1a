package federation

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

// FetchOption is an option used when dialing the bundle endpoint. It selects
// the endpoint profile: without one, the endpoint is authenticated with the
// https_web profile against the system's Web PKI roots.
type FetchOption interface {
	apply(*fetchOptions) error
}

type fetchOptions struct {
	authMethod authMethod
	tlsConfig  *tls.Config
}

type authMethod int

const (
	authMethodDefault authMethod = iota
	authMethodSPIFFE
	authMethodWebPKI
)

type fetchOption func(*fetchOptions) error

func (fo fetchOption) apply(o *fetchOptions) error { return fo(o) }

// errBothAuth is returned when a second profile option is given: the profile is
// configured explicitly and never chosen by trying one and then the other
// (Fed rule 2).
var errBothAuth = errors.New("cannot use both SPIFFE and Web PKI authentication")

// WithSPIFFEAuth authenticates the bundle endpoint with SPIFFE authentication
// (the https_spiffe profile, Fed rules 14-16): the server must present an
// X509-SVID that verifies against the bundle bundleSource holds for
// endpointID's trust domain, and whose SPIFFE ID is exactly endpointID. The
// host name of the URL is not checked. This option cannot be used in
// conjunction with WithWebPKIRoots option, nor given twice.
//
// bundleSource is read on every TLS handshake, that is on every fetch and on
// every redirect target, never cached by this package. For a self-serving
// endpoint (Fed rule 17: endpointID belongs to the trust domain being
// fetched), the caller bootstraps bundleSource with an up-to-date bundle of
// that trust domain and replaces it with each newly fetched bundle (for
// instance from BundleWatcher.OnUpdate, storing it in an x509bundle.Set or
// spiffebundle.Set): every later fetch is then authenticated with the latest
// bundle, so the foreign trust domain can rotate its keys.
//
// FetchBundle and WatchBundle return an error when bundleSource is nil or
// endpointID is zero.
func WithSPIFFEAuth(bundleSource x509bundle.Source, endpointID spiffeid.ID) FetchOption {
	return fetchOption(func(o *fetchOptions) error {
		if o.authMethod != authMethodDefault {
			return errBothAuth
		}
		if bundleSource == nil {
			return errors.New("bundle source is required for SPIFFE authentication")
		}
		if endpointID.IsZero() {
			return errors.New("endpoint SPIFFE ID is required for SPIFFE authentication")
		}
		// TLSClientConfig sets TLS 1.2 as the minimum version and verifies
		// the chain in VerifyConnection, so resumed sessions are checked again.
		o.tlsConfig = tlsconfig.TLSClientConfig(bundleSource, tlsconfig.AuthorizeID(endpointID))
		o.authMethod = authMethodSPIFFE
		return nil
	})
}

// WithWebPKIRoots authenticates the bundle endpoint using Web PKI
// authentication (the https_web profile, Fed rules 12-13) using the provided
// X.509 root certificates instead of the system ones: the server's certificate
// must chain to one of rootCAs and name the URL's host. A nil pool means the
// system roots, as when no option is given. TLS 1.2 is the minimum version
// (Fed rule 7). This option cannot be used in conjunction with WithSPIFFEAuth
// option, nor given twice.
func WithWebPKIRoots(rootCAs *x509.CertPool) FetchOption {
	return fetchOption(func(o *fetchOptions) error {
		if o.authMethod != authMethodDefault {
			return errBothAuth
		}
		o.tlsConfig = webPKIConfig(rootCAs)
		o.authMethod = authMethodWebPKI
		return nil
	})
}

func webPKIConfig(rootCAs *x509.CertPool) *tls.Config {
	return &tls.Config{
		RootCAs:    rootCAs,
		MinVersion: tls.VersionTLS12,
	}
}
