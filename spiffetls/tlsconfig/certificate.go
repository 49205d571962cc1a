package tlsconfig

import (
	"crypto/tls"
	"errors"

	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// GetCertificate returns a callback for tls.Config.GetCertificate that
// presents the X509-SVID that svid holds at the time of each handshake, so a
// server picks up rotated SVIDs without a restart. The source is called once
// per full handshake and must not block (a workloadapi.X509Source or a static
// *x509svid.SVID qualify). The handshake fails if the source fails or returns
// an SVID without certificates or private key.
func GetCertificate(svid x509svid.Source, opts ...Option) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	o := newOptions(opts)
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return fetchCertificate(svid, o.trace)
	}
}

// GetClientCertificate returns a callback for
// tls.Config.GetClientCertificate that presents the X509-SVID that svid holds
// at the time of each handshake, as [GetCertificate] does for servers.
func GetClientCertificate(svid x509svid.Source, opts ...Option) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	o := newOptions(opts)
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return fetchCertificate(svid, o.trace)
	}
}

// fetchCertificate gets the current X509-SVID from src and turns it into a
// tls.Certificate, reporting to trace on the way.
func fetchCertificate(src x509svid.Source, trace Trace) (*tls.Certificate, error) {
	var traceValue any
	if trace.GetCertificate != nil {
		traceValue = trace.GetCertificate(GetCertificateInfo{})
	}
	cert, err := certificateFromSource(src)
	if trace.GotCertificate != nil {
		trace.GotCertificate(GotCertificateInfo{Cert: cert, Err: err}, traceValue)
	}
	return cert, err
}

func certificateFromSource(src x509svid.Source) (*tls.Certificate, error) {
	if src == nil {
		return nil, errors.New("tlsconfig: X509-SVID source is required")
	}
	svid, err := src.GetX509SVID()
	switch {
	case err != nil:
		// Sources return errors with their own package prefix.
		return nil, err
	case svid == nil:
		return nil, errors.New("tlsconfig: X509-SVID source returned no SVID")
	case len(svid.Certificates) == 0 || svid.Certificates[0] == nil:
		return nil, errors.New("tlsconfig: X509-SVID has no certificates")
	case svid.PrivateKey == nil:
		return nil, errors.New("tlsconfig: X509-SVID has no private key")
	}
	cert := &tls.Certificate{
		Certificate: make([][]byte, 0, len(svid.Certificates)),
		PrivateKey:  svid.PrivateKey,
		Leaf:        svid.Certificates[0],
	}
	for _, c := range svid.Certificates {
		if c == nil {
			return nil, errors.New("tlsconfig: X509-SVID has a nil certificate")
		}
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}
