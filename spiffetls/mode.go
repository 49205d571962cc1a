package spiffetls

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// sourceKind says where a mode gets its X509-SVID and bundles from.
type sourceKind int

const (
	// sourceNew: a workloadapi.X509Source created from options and owned by
	// the connection or listener.
	sourceNew sourceKind = iota
	// sourceGiven: a workloadapi.X509Source owned by the caller.
	sourceGiven
	// sourceRaw: x509svid and x509bundle sources owned by the caller.
	sourceRaw
)

type clientKind int

const (
	tlsClient clientKind = iota
	mtlsClient
	mtlsWebClient
)

type serverKind int

const (
	tlsServer serverKind = iota
	mtlsServer
	mtlsWebServer
)

// sources is what a mode draws on; which fields are set depends on kind.
type sources struct {
	kind    sourceKind
	source  *workloadapi.X509Source
	options []workloadapi.X509SourceOption
	svid    x509svid.Source
	bundle  x509bundle.Source
}

// DialMode is a SPIFFE TLS dialing mode: how the client authenticates, and
// how it verifies and authorizes the server. Build one with the functions of
// this package, such as [MTLSClient].
type DialMode interface {
	dialMode() *dialMode
}

type dialMode struct {
	kind       clientKind
	authorizer tlsconfig.Authorizer
	roots      *x509.CertPool
	sources
}

func (m *dialMode) dialMode() *dialMode { return m }

// ListenMode is a SPIFFE TLS listening mode: how the server authenticates,
// and how it verifies and authorizes clients. Build one with the functions
// of this package, such as [MTLSServer].
type ListenMode interface {
	listenMode() *listenMode
}

type listenMode struct {
	kind       serverKind
	authorizer tlsconfig.Authorizer
	cert       *tls.Certificate
	sources
}

func (m *listenMode) listenMode() *listenMode { return m }

func newSource(options []workloadapi.X509SourceOption) sources {
	return sources{kind: sourceNew, options: options}
}

func givenSource(source *workloadapi.X509Source) sources {
	return sources{kind: sourceGiven, source: source}
}

// TLSClient configures dialing for TLS: the client presents no certificate
// and verifies the server's X509-SVID with X.509 bundles from a new
// Workload API X.509 source at the default address; authorizer authorizes
// the server. The source is closed with the connection.
func TLSClient(authorizer tlsconfig.Authorizer) DialMode {
	return TLSClientWithSourceOptions(authorizer)
}

// TLSClientWithSource configures dialing for TLS, verifying the server's
// X509-SVID with X.509 bundles from source, which the caller owns and must
// keep open for the lifetime of the connection; authorizer authorizes the
// server.
func TLSClientWithSource(authorizer tlsconfig.Authorizer, source *workloadapi.X509Source) DialMode {
	return &dialMode{kind: tlsClient, authorizer: authorizer, sources: givenSource(source)}
}

// TLSClientWithSourceOptions configures dialing for TLS, verifying the
// server's X509-SVID with X.509 bundles from a new Workload API X.509 source
// created with options; authorizer authorizes the server. The source is
// closed with the connection.
func TLSClientWithSourceOptions(authorizer tlsconfig.Authorizer, options ...workloadapi.X509SourceOption) DialMode {
	return &dialMode{kind: tlsClient, authorizer: authorizer, sources: newSource(options)}
}

// TLSClientWithRawConfig configures dialing for TLS, verifying the server's
// X509-SVID with X.509 bundles from bundle, which must stay usable for the
// lifetime of the connection; authorizer authorizes the server.
func TLSClientWithRawConfig(authorizer tlsconfig.Authorizer, bundle x509bundle.Source) DialMode {
	return &dialMode{kind: tlsClient, authorizer: authorizer, sources: sources{kind: sourceRaw, bundle: bundle}}
}

// MTLSClient configures dialing for mutually authenticated TLS (mTLS). The
// client's X509-SVID and the X.509 bundles that verify the server's
// X509-SVID come from a new Workload API X.509 source at the default
// address, closed with the connection; authorizer authorizes the server.
func MTLSClient(authorizer tlsconfig.Authorizer) DialMode {
	return MTLSClientWithSourceOptions(authorizer)
}

// MTLSClientWithSource configures dialing for mTLS with the X509-SVID and
// X.509 bundles of source, which the caller owns and must keep open for the
// lifetime of the connection; authorizer authorizes the server.
func MTLSClientWithSource(authorizer tlsconfig.Authorizer, source *workloadapi.X509Source) DialMode {
	return &dialMode{kind: mtlsClient, authorizer: authorizer, sources: givenSource(source)}
}

// MTLSClientWithSourceOptions configures dialing for mTLS with the X509-SVID
// and X.509 bundles of a new Workload API X.509 source created with
// options, closed with the connection; authorizer authorizes the server.
func MTLSClientWithSourceOptions(authorizer tlsconfig.Authorizer, options ...workloadapi.X509SourceOption) DialMode {
	return &dialMode{kind: mtlsClient, authorizer: authorizer, sources: newSource(options)}
}

// MTLSClientWithRawConfig configures dialing for mTLS with the X509-SVID of
// svid and the X.509 bundles of bundle, which must stay usable for the
// lifetime of the connection; authorizer authorizes the server.
func MTLSClientWithRawConfig(authorizer tlsconfig.Authorizer, svid x509svid.Source, bundle x509bundle.Source) DialMode {
	return &dialMode{kind: mtlsClient, authorizer: authorizer, sources: sources{kind: sourceRaw, svid: svid, bundle: bundle}}
}

// MTLSWebClient configures dialing for mTLS to a web server: the client
// presents an X509-SVID from a new Workload API X.509 source at the default
// address, closed with the connection, and verifies the server's certificate
// against roots (the system roots if nil) and the server name.
func MTLSWebClient(roots *x509.CertPool) DialMode {
	return MTLSWebClientWithSourceOptions(roots)
}

// MTLSWebClientWithSource configures dialing for mTLS to a web server,
// presenting the X509-SVID of source, which the caller owns and must keep
// open for the lifetime of the connection, and verifying the server's
// certificate against roots (the system roots if nil).
func MTLSWebClientWithSource(roots *x509.CertPool, source *workloadapi.X509Source) DialMode {
	return &dialMode{kind: mtlsWebClient, roots: roots, sources: givenSource(source)}
}

// MTLSWebClientWithSourceOptions configures dialing for mTLS to a web
// server, presenting the X509-SVID of a new Workload API X.509 source
// created with options, closed with the connection, and verifying the
// server's certificate against roots (the system roots if nil).
func MTLSWebClientWithSourceOptions(roots *x509.CertPool, options ...workloadapi.X509SourceOption) DialMode {
	return &dialMode{kind: mtlsWebClient, roots: roots, sources: newSource(options)}
}

// MTLSWebClientWithRawConfig configures dialing for mTLS to a web server,
// presenting the X509-SVID of svid, which must stay usable for the lifetime
// of the connection, and verifying the server's certificate against roots
// (the system roots if nil).
func MTLSWebClientWithRawConfig(roots *x509.CertPool, svid x509svid.Source) DialMode {
	return &dialMode{kind: mtlsWebClient, roots: roots, sources: sources{kind: sourceRaw, svid: svid}}
}

// TLSServer configures a listener for TLS: it presents an X509-SVID from a
// new Workload API X.509 source at the default address, closed with the
// listener, and does not ask clients for certificates.
func TLSServer() ListenMode {
	return TLSServerWithSourceOptions()
}

// TLSServerWithSource configures a listener for TLS, presenting the
// X509-SVID of source, which the caller owns and must keep open for the
// lifetime of the listener.
func TLSServerWithSource(source *workloadapi.X509Source) ListenMode {
	return &listenMode{kind: tlsServer, sources: givenSource(source)}
}

// TLSServerWithSourceOptions configures a listener for TLS, presenting the
// X509-SVID of a new Workload API X.509 source created with options, closed
// with the listener.
func TLSServerWithSourceOptions(options ...workloadapi.X509SourceOption) ListenMode {
	return &listenMode{kind: tlsServer, sources: newSource(options)}
}

// TLSServerWithRawConfig configures a listener for TLS, presenting the
// X509-SVID of svid, which must stay usable for the lifetime of the
// listener.
func TLSServerWithRawConfig(svid x509svid.Source) ListenMode {
	return &listenMode{kind: tlsServer, sources: sources{kind: sourceRaw, svid: svid}}
}

// MTLSServer configures a listener for mTLS: it presents an X509-SVID and
// verifies client X509-SVIDs with X.509 bundles, both from a new Workload
// API X.509 source at the default address, closed with the listener;
// authorizer authorizes clients.
func MTLSServer(authorizer tlsconfig.Authorizer) ListenMode {
	return MTLSServerWithSourceOptions(authorizer)
}

// MTLSServerWithSource configures a listener for mTLS with the X509-SVID and
// X.509 bundles of source, which the caller owns and must keep open for the
// lifetime of the listener; authorizer authorizes clients.
func MTLSServerWithSource(authorizer tlsconfig.Authorizer, source *workloadapi.X509Source) ListenMode {
	return &listenMode{kind: mtlsServer, authorizer: authorizer, sources: givenSource(source)}
}

// MTLSServerWithSourceOptions configures a listener for mTLS with the
// X509-SVID and X.509 bundles of a new Workload API X.509 source created
// with options, closed with the listener; authorizer authorizes clients.
func MTLSServerWithSourceOptions(authorizer tlsconfig.Authorizer, options ...workloadapi.X509SourceOption) ListenMode {
	return &listenMode{kind: mtlsServer, authorizer: authorizer, sources: newSource(options)}
}

// MTLSServerWithRawConfig configures a listener for mTLS with the X509-SVID
// of svid and the X.509 bundles of bundle, which must stay usable for the
// lifetime of the listener; authorizer authorizes clients.
func MTLSServerWithRawConfig(authorizer tlsconfig.Authorizer, svid x509svid.Source, bundle x509bundle.Source) ListenMode {
	return &listenMode{kind: mtlsServer, authorizer: authorizer, sources: sources{kind: sourceRaw, svid: svid, bundle: bundle}}
}

// MTLSWebServer configures a listener for mTLS that presents the web
// certificate cert and verifies client X509-SVIDs with X.509 bundles from a
// new Workload API X.509 source at the default address, closed with the
// listener; authorizer authorizes clients.
func MTLSWebServer(authorizer tlsconfig.Authorizer, cert *tls.Certificate) ListenMode {
	return MTLSWebServerWithSourceOptions(authorizer, cert)
}

// MTLSWebServerWithSource configures a listener for mTLS that presents cert
// and verifies client X509-SVIDs with the X.509 bundles of source, which the
// caller owns and must keep open for the lifetime of the listener;
// authorizer authorizes clients.
func MTLSWebServerWithSource(authorizer tlsconfig.Authorizer, cert *tls.Certificate, source *workloadapi.X509Source) ListenMode {
	return &listenMode{kind: mtlsWebServer, authorizer: authorizer, cert: cert, sources: givenSource(source)}
}

// MTLSWebServerWithSourceOptions configures a listener for mTLS that
// presents cert and verifies client X509-SVIDs with the X.509 bundles of a
// new Workload API X.509 source created with options, closed with the
// listener; authorizer authorizes clients.
func MTLSWebServerWithSourceOptions(authorizer tlsconfig.Authorizer, cert *tls.Certificate, options ...workloadapi.X509SourceOption) ListenMode {
	return &listenMode{kind: mtlsWebServer, authorizer: authorizer, cert: cert, sources: newSource(options)}
}

// MTLSWebServerWithRawConfig configures a listener for mTLS that presents
// cert and verifies client X509-SVIDs with the X.509 bundles of bundle,
// which must stay usable for the lifetime of the listener; authorizer
// authorizes clients.
func MTLSWebServerWithRawConfig(authorizer tlsconfig.Authorizer, cert *tls.Certificate, bundle x509bundle.Source) ListenMode {
	return &listenMode{kind: mtlsWebServer, authorizer: authorizer, cert: cert, sources: sources{kind: sourceRaw, bundle: bundle}}
}
