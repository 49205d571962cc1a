package tlsconfig

import "crypto/tls"

// Trace holds callbacks invoked when an X509-SVID is fetched from a source
// for a TLS handshake. Either field may be nil. The callbacks run inside TLS
// handshakes, possibly concurrently, and must be safe for concurrent use.
type Trace struct {
	// GetCertificate is called before the X509-SVID is fetched. Its result
	// is passed to GotCertificate for the same fetch, so that the two calls
	// can be correlated (for example with a span or a start time).
	GetCertificate func(GetCertificateInfo) any

	// GotCertificate is called after the fetch with the certificate that
	// will be presented, or the error that fails the handshake, and with the
	// value GetCertificate returned (nil if GetCertificate is nil).
	GotCertificate func(GotCertificateInfo, any)
}

// GetCertificateInfo is passed to Trace.GetCertificate. It has no fields yet;
// it exists so that fields can be added without breaking callers.
type GetCertificateInfo struct{}

// GotCertificateInfo is passed to Trace.GotCertificate: exactly one of Cert
// and Err is set.
type GotCertificateInfo struct {
	// Cert is the certificate built from the fetched X509-SVID.
	Cert *tls.Certificate
	// Err is the error that prevented building a certificate.
	Err error
}
