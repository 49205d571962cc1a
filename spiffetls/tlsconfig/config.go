package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// TLSClientConfig returns a new TLS client configuration that verifies the
// server's X509-SVID against bundle and authorizes it with authorizer, on
// every handshake including resumed ones (see [VerifyConnection]). The client
// presents no certificate. The config is the caller's to change further.
func TLSClientConfig(bundle x509bundle.Source, authorizer Authorizer, opts ...Option) *tls.Config {
	c := newConfig()
	HookTLSClientConfig(c, bundle, authorizer, opts...)
	return c
}

// HookTLSClientConfig sets up config, in place, to verify the server's
// X509-SVID against bundle and authorize it with authorizer, as
// [TLSClientConfig] does. See the package documentation on hook functions
// for what it changes and keeps.
func HookTLSClientConfig(config *tls.Config, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) {
	if config == nil {
		return
	}
	resetAuthFields(config)
	config.InsecureSkipVerify = true // verification is done by the SPIFFE verifier
	installVerifier(config, bundle, authorizer)
}

// MTLSClientConfig returns a new TLS client configuration that presents the
// current X509-SVID of svid on every handshake, and verifies the server's
// X509-SVID against bundle and authorizes it with authorizer, on every
// handshake including resumed ones.
func MTLSClientConfig(svid x509svid.Source, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) *tls.Config {
	c := newConfig()
	HookMTLSClientConfig(c, svid, bundle, authorizer, opts...)
	return c
}

// HookMTLSClientConfig sets up config, in place, as [MTLSClientConfig] does.
// See the package documentation on hook functions for what it changes and
// keeps.
func HookMTLSClientConfig(config *tls.Config, svid x509svid.Source, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) {
	if config == nil {
		return
	}
	resetAuthFields(config)
	config.GetClientCertificate = GetClientCertificate(svid, opts...)
	config.InsecureSkipVerify = true // verification is done by the SPIFFE verifier
	installVerifier(config, bundle, authorizer)
}

// MTLSWebClientConfig returns a new TLS client configuration that presents
// the current X509-SVID of svid on every handshake and verifies the server's
// certificate as crypto/tls does by default, against roots (the system roots
// if nil) and the server name.
func MTLSWebClientConfig(svid x509svid.Source, roots *x509.CertPool, opts ...Option) *tls.Config {
	c := newConfig()
	HookMTLSWebClientConfig(c, svid, roots, opts...)
	return c
}

// HookMTLSWebClientConfig sets up config, in place, as [MTLSWebClientConfig]
// does. See the package documentation on hook functions for what it changes
// and keeps.
func HookMTLSWebClientConfig(config *tls.Config, svid x509svid.Source, roots *x509.CertPool, opts ...Option) {
	if config == nil {
		return
	}
	resetAuthFields(config)
	config.GetClientCertificate = GetClientCertificate(svid, opts...)
	config.RootCAs = roots
}

// TLSServerConfig returns a new TLS server configuration that presents the
// current X509-SVID of svid on every handshake and neither requests nor
// verifies client certificates.
func TLSServerConfig(svid x509svid.Source, opts ...Option) *tls.Config {
	c := newConfig()
	HookTLSServerConfig(c, svid, opts...)
	return c
}

// HookTLSServerConfig sets up config, in place, as [TLSServerConfig] does.
// See the package documentation on hook functions for what it changes and
// keeps.
func HookTLSServerConfig(config *tls.Config, svid x509svid.Source, opts ...Option) {
	if config == nil {
		return
	}
	resetAuthFields(config)
	config.GetCertificate = GetCertificate(svid, opts...)
}

// MTLSServerConfig returns a new TLS server configuration that presents the
// current X509-SVID of svid on every handshake, requires a client X509-SVID,
// verifies it against bundle and authorizes it with authorizer, on every
// handshake including resumed ones.
func MTLSServerConfig(svid x509svid.Source, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) *tls.Config {
	c := newConfig()
	HookMTLSServerConfig(c, svid, bundle, authorizer, opts...)
	return c
}

// HookMTLSServerConfig sets up config, in place, as [MTLSServerConfig] does.
// See the package documentation on hook functions for what it changes and
// keeps.
func HookMTLSServerConfig(config *tls.Config, svid x509svid.Source, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) {
	if config == nil {
		return
	}
	resetAuthFields(config)
	// Any certificate is requested; the SPIFFE verifier does the checking.
	config.ClientAuth = tls.RequireAnyClientCert
	config.GetCertificate = GetCertificate(svid, opts...)
	installVerifier(config, bundle, authorizer)
}

// MTLSWebServerConfig returns a new TLS server configuration that presents
// cert (a web certificate, typically issued by a public CA), requires a
// client X509-SVID, verifies it against bundle and authorizes it with
// authorizer, on every handshake including resumed ones. A nil cert makes
// every handshake fail.
func MTLSWebServerConfig(cert *tls.Certificate, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) *tls.Config {
	c := newConfig()
	HookMTLSWebServerConfig(c, cert, bundle, authorizer, opts...)
	return c
}

// HookMTLSWebServerConfig sets up config, in place, as
// [MTLSWebServerConfig] does. See the package documentation on hook
// functions for what it changes and keeps. The certificate is static, so
// opts (which trace SVID fetches) have no effect.
func HookMTLSWebServerConfig(config *tls.Config, cert *tls.Certificate, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) {
	if config == nil {
		return
	}
	resetAuthFields(config)
	config.ClientAuth = tls.RequireAnyClientCert
	if cert != nil {
		config.Certificates = []tls.Certificate{*cert}
	}
	installVerifier(config, bundle, authorizer)
}

func newConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// resetAuthFields clears every field through which a certificate could be
// chosen or a peer verified by other means than the hook installs.
func resetAuthFields(config *tls.Config) {
	if config.MinVersion < tls.VersionTLS12 {
		config.MinVersion = tls.VersionTLS12
	}
	config.Certificates = nil
	config.NameToCertificate = nil //nolint:staticcheck // cleared so it cannot pick another certificate
	config.GetCertificate = nil
	config.GetClientCertificate = nil
	// A config returned by GetConfigForClient would replace this one for
	// the handshake, SPIFFE verification included.
	config.GetConfigForClient = nil
	config.ClientAuth = tls.NoClientCert
	config.ClientCAs = nil
	config.InsecureSkipVerify = false
	config.RootCAs = nil
}

// installVerifier makes config authenticate and authorize the peer's
// X509-SVID in VerifyConnection. The VerifyPeerCertificate and
// VerifyConnection callbacks already on config run afterwards, with the
// chains verified against bundle; VerifyPeerCertificate is moved into the
// new callback so that it never runs before SPIFFE authentication.
func installVerifier(config *tls.Config, bundle x509bundle.Source, authorizer Authorizer) {
	v := &verifier{
		bundle:     bundle,
		authorizer: authorizer,
		next:       config.VerifyPeerCertificate,
		nextConn:   config.VerifyConnection,
	}
	config.VerifyPeerCertificate = nil
	config.VerifyConnection = v.verifyConnection
}
