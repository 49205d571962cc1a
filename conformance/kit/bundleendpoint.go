package kit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The bundle endpoint profiles (Fed rule 6).
const (
	ProfileHTTPSWeb    = "https_web"
	ProfileHTTPSSPIFFE = "https_spiffe"
)

// DefaultPollInterval is how often CheckBundleEndpoint fetches again
// during a rotation wait.
const DefaultPollInterval = time.Second

// maxRedirects bounds the redirects the kit follows.
const maxRedirects = 5

// BundleEndpointConfig says which bundle endpoint to check, and how to
// authenticate it: the three parameters of a federation relationship (Fed
// rule 1), and the profile's own.
type BundleEndpointConfig struct {
	// URL is the endpoint's URL.
	URL string
	// TrustDomain is the name of the trust domain whose bundle the
	// endpoint serves ("example.org").
	TrustDomain string
	// Profile is ProfileHTTPSWeb or ProfileHTTPSSPIFFE.
	Profile string
	// WebRoots are the roots an https_web endpoint's certificate must
	// chain to; nil means the system's.
	WebRoots *x509.CertPool
	// EndpointID is the SPIFFE ID an https_spiffe endpoint must present.
	EndpointID string
	// EndpointBundle holds the X.509 authorities of EndpointID's trust
	// domain, which an https_spiffe endpoint's X509-SVID must validate
	// against.
	EndpointBundle []*x509.Certificate
	// Timeout bounds every request; zero means DefaultTimeout.
	Timeout time.Duration
	// RotationWait, when positive, fetches the bundle again every
	// PollInterval for that long, until its keys change, and checks the
	// sequence between the two versions (Bundle rule 8b).
	RotationWait time.Duration
	// PollInterval is the interval of those fetches; zero means
	// DefaultPollInterval.
	PollInterval time.Duration
}

// CheckBundleEndpoint checks a live bundle endpoint: its URL, TLS, client
// authentication, answer and redirects (the Fed rules), the profile's
// server authentication, and the bundle rules on the document it serves.
// It only sends GETs, each bounded by cfg.Timeout.
//
// It refuses to run, returning an error and no report, when cfg lacks a
// relationship's parameters, or when it cannot reach the endpoint at all
// (no connection, or a TLS failure that is not the server's
// authentication).
func CheckBundleEndpoint(ctx context.Context, cfg BundleEndpointConfig) (*Report, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("kit: bundle endpoint URL %q: %w", cfg.URL, err)
	}
	if _, err := spiffeid.TrustDomainFromString(cfg.TrustDomain); err != nil || cfg.TrustDomain == "" {
		return nil, fmt.Errorf("kit: the trust domain of the bundle endpoint is required (Fed rule 1): %q", cfg.TrustDomain)
	}
	var endpointID spiffeid.ID
	switch cfg.Profile {
	case ProfileHTTPSWeb:
	case ProfileHTTPSSPIFFE:
		if endpointID, err = spiffeid.FromString(cfg.EndpointID); err != nil {
			return nil, fmt.Errorf("kit: https_spiffe needs the endpoint's SPIFFE ID (Fed rule 14): %w", err)
		}
		if len(cfg.EndpointBundle) == 0 {
			return nil, errors.New("kit: https_spiffe needs the X.509 authorities of the endpoint's trust domain (Fed rule 14)")
		}
	default:
		return nil, fmt.Errorf("kit: profile %q: want %s or %s (Fed rule 1)", cfg.Profile, ProfileHTTPSWeb, ProfileHTTPSSPIFFE)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	b := &bundleEndpointCheck{cfg: cfg, endpointID: endpointID, r: NewReport(ModeBundleEndpoint, cfg.URL)}
	if !b.checkURL("URL", u) {
		b.r.Finish()
		return b.r, nil
	}
	first, err := b.fetch(ctx)
	if err != nil {
		return nil, err
	}
	b.checkTLS(ctx, u)
	if first == nil {
		b.r.Finish()
		return b.r, nil
	}
	b.r.CheckBundle("bundle", first)
	if cfg.RotationWait > 0 {
		b.watch(ctx, first)
	}
	b.r.Finish()
	return b.r, nil
}

// bundleEndpointCheck is one run of CheckBundleEndpoint.
type bundleEndpointCheck struct {
	cfg        BundleEndpointConfig
	endpointID spiffeid.ID
	r          *Report

	clientCertAsked bool
}

// checkURL checks Fed rule 8 (and 11a for a redirect's target).
func (b *bundleEndpointCheck) checkURL(subject string, u *url.URL) bool {
	ok := u.Scheme == "https" && u.User == nil && u.Host != ""
	rule := "Fed rule 8"
	if subject != "URL" {
		rule = "Fed rule 11a"
	}
	b.r.add(rule, subject, ok, "%s (scheme %q, userinfo %v)", u.Redacted(), u.Scheme, u.User != nil)
	return ok
}

// tlsConfig is the client's TLS configuration for the profile. It asks
// for nothing the profile does not: no client certificate (Fed rule 9).
func (b *bundleEndpointCheck) tlsConfig(serverName string) *tls.Config {
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			b.clientCertAsked = true
			return &tls.Certificate{}, nil
		},
	}
	if b.cfg.Profile == ProfileHTTPSWeb {
		c.RootCAs = b.cfg.WebRoots
	} else {
		// https_spiffe: no hostname check (Fed rule 16); the X509-SVID is
		// checked after the handshake, rule by rule.
		c.InsecureSkipVerify = true
	}
	return c
}

// fetch makes one GET, following redirects, and checks Fed rules 9, 10,
// 11, 12 and 16 on it. It returns the body when it is a bundle's JSON,
// nil when the answer fails a rule, and an error when the endpoint cannot
// be reached.
func (b *bundleEndpointCheck) fetch(ctx context.Context) ([]byte, error) {
	u, _ := url.Parse(b.cfg.URL)
	transport := &http.Transport{
		TLSClientConfig:     b.tlsConfig(u.Hostname()),
		TLSHandshakeTimeout: b.cfg.Timeout,
		DisableKeepAlives:   true,
		Proxy:               nil,
	}
	defer transport.CloseIdleConnections()
	redirects, refused := 0, false
	client := &http.Client{
		Transport: transport,
		Timeout:   b.cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			redirects++
			code := 0
			if req.Response != nil {
				code = req.Response.StatusCode
			}
			subject := fmt.Sprintf("redirect %d", redirects)
			b.r.add("Fed rule 11b", subject, code == http.StatusFound || code == http.StatusSeeOther || code == http.StatusTemporaryRedirect, "status %d to %s", code, req.URL.Redacted())
			if !b.checkURL(subject, req.URL) {
				refused = true
				return http.ErrUseLastResponse
			}
			if redirects > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			// The same authentication applies to the target (Fed rule 11).
			transport.TLSClientConfig = b.tlsConfig(req.URL.Hostname())
			return nil
		},
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("kit: %s: %w", b.cfg.URL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return b.fetchError(err)
	}
	defer resp.Body.Close()
	b.r.add("Fed rule 9", "GET", true, "answered without client authentication (a client certificate was asked for: %v)", b.clientCertAsked)
	if redirects == 0 {
		b.r.na("Fed rule 11a", "GET", "no redirect")
		b.r.na("Fed rule 11b", "GET", "no redirect")
	}
	b.checkServerAuth(resp.TLS)
	if refused {
		b.r.na("Fed rule 10a", "GET", "the redirect's target was not followed (Fed rule 11a)")
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBundleSize+1))
	if err != nil {
		b.r.add("Fed rule 10a", "GET", false, "reading the answer: %v", err)
		return nil, nil
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var probe map[string]json.RawMessage
	ok := resp.StatusCode == http.StatusOK && utf8.Valid(body) && json.Unmarshal(body, &probe) == nil && probe != nil
	b.r.add("Fed rule 10a", "GET", ok, "status %d, %d bytes, a JSON object: %v", resp.StatusCode, len(body), probe != nil)
	b.r.add("Fed rule 10b", "GET", mediaType == "application/json", "Content-Type %q", resp.Header.Get("Content-Type"))
	if !ok {
		return nil, nil
	}
	return body, nil
}

// fetchError sorts a failed GET: the server's authentication or a client
// certificate it required is a finding; anything else means the endpoint
// cannot be reached, and the kit refuses.
func (b *bundleEndpointCheck) fetchError(err error) ([]byte, error) {
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &verify), errors.As(err, &hostname), errors.As(err, &unknown), errors.As(err, &invalid):
		b.r.add("Fed rule 12", "server certificate", false, "%v", err)
		return nil, nil
	case b.clientCertAsked:
		b.r.add("Fed rule 9", "GET", false, "the server asked for a client certificate and failed without one: %v", err)
		return nil, nil
	}
	var redirect *url.Error
	if errors.As(err, &redirect) && redirect.Err != nil && bytes.Contains([]byte(redirect.Err.Error()), []byte("redirects")) {
		b.r.add("Fed rule 11a", "GET", false, "%v", err)
		return nil, nil
	}
	return nil, fmt.Errorf("kit: cannot reach the bundle endpoint %s: %w; refusing to check it", b.cfg.URL, err)
}

// checkServerAuth checks the profile's server authentication on the
// connection that answered: Fed rule 12 (https_web, which the handshake
// already verified) or Fed rule 16 and the X509 rules (https_spiffe).
func (b *bundleEndpointCheck) checkServerAuth(state *tls.ConnectionState) {
	if state == nil {
		b.r.add("Fed rule 8", "GET", false, "the answer came without TLS")
		return
	}
	if b.cfg.Profile == ProfileHTTPSWeb {
		b.r.add("Fed rule 12", "server certificate", true, "chains to the trusted roots and names %q", state.ServerName)
		return
	}
	id := b.r.CheckX509SVID(X509SVID{
		Chain:   state.PeerCertificates,
		Bundles: map[string][]*x509.Certificate{b.endpointID.TrustDomain().Name(): b.cfg.EndpointBundle},
		Name:    "server certificate",
	}, time.Now())
	valid := false
	for _, res := range b.r.ByRule("X509 rule 21") {
		valid = res.Subject == "server certificate leaf "+id.String() && res.Verdict == Pass
	}
	b.r.add("Fed rule 16", "server certificate", id == b.endpointID && valid, "presents %q, want %q; validates against the endpoint's trust domain: %v", id, b.endpointID, valid)
}

// checkTLS checks Fed rule 7: the version and suite negotiated, and the
// refusal of TLS 1.1.
func (b *bundleEndpointCheck) checkTLS(ctx context.Context, u *url.URL) {
	probe := probeTLS(ctx, u, b.tlsConfig(u.Hostname()), b.cfg.Timeout)
	if probe.err != nil {
		b.r.add("Fed rule 7", "TLS", false, "handshake: %v", probe.err)
		return
	}
	state := probe.state
	aead := state.Version == tls.VersionTLS13 || slices.Contains(aeadSuites, state.CipherSuite)
	b.r.add("Fed rule 7", "TLS", state.Version >= tls.VersionTLS12 && aead, "negotiated %s with %s", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
	b.r.add("Fed rule 7", "TLS 1.1", probe.legacyErr != nil, "a handshake offering at most TLS 1.1: %s", describeTLS(probe.legacyErr))
}

// tlsProbe is what two handshakes with a server showed: one offering TLS
// 1.0 to 1.3, and one offering at most TLS 1.1.
type tlsProbe struct {
	state     tls.ConnectionState // of the first handshake
	err       error               // of the first handshake
	legacyErr error               // of the second: nil when TLS 1.1 was accepted
}

// probeTLS makes the two handshakes of a tlsProbe with the server of u
// (port 443 when u names none), with config c whose versions and
// verification it overrides: only the versions are looked at.
func probeTLS(ctx context.Context, u *url.URL, c *tls.Config, timeout time.Duration) tlsProbe {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "443")
	}
	dial := func(min, max uint16) (tls.ConnectionState, error) {
		c := c.Clone()
		c.InsecureSkipVerify = true // only the version is looked at here
		c.MinVersion, c.MaxVersion = min, max
		d := &tls.Dialer{Config: c, NetDialer: &net.Dialer{Timeout: timeout}}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := d.DialContext(dctx, "tcp", host)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.(*tls.Conn).ConnectionState(), nil
	}
	var p tlsProbe
	if p.state, p.err = dial(tls.VersionTLS10, tls.VersionTLS13); p.err != nil {
		return p
	}
	_, p.legacyErr = dial(tls.VersionTLS10, tls.VersionTLS11)
	return p
}

// aeadSuites are the TLS 1.2 suites Mozilla's intermediate configuration
// keeps.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func describeTLS(err error) string {
	if err == nil {
		return "accepted"
	}
	return "refused (" + err.Error() + ")"
}

// watch fetches the bundle every PollInterval until its keys change or
// RotationWait passes, and checks Bundle rule 8b between the versions.
func (b *bundleEndpointCheck) watch(ctx context.Context, first []byte) {
	deadline := time.Now().Add(b.cfg.RotationWait)
	ticker := time.NewTicker(b.cfg.PollInterval)
	defer ticker.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			b.r.na("Bundle rule 8b", "bundle over time", "stopped: %v", ctx.Err())
			return
		case <-ticker.C:
		}
		next, err := b.quietFetch(ctx)
		if err != nil || next == nil || sameKeys(first, next) {
			continue
		}
		b.r.CheckBundle("bundle (later)", next)
		b.r.CheckBundleUpdate("bundle over time", first, next)
		return
	}
	b.r.na("Bundle rule 8b", "bundle over time", "the keys did not change in %s", b.cfg.RotationWait)
}

// quietFetch fetches the bundle again, recording nothing.
func (b *bundleEndpointCheck) quietFetch(ctx context.Context) ([]byte, error) {
	quiet := &bundleEndpointCheck{cfg: b.cfg, endpointID: b.endpointID, r: NewReport(ModeBundleEndpoint, b.cfg.URL)}
	body, err := quiet.fetch(ctx)
	if quiet.r.Failed() {
		return nil, err
	}
	return body, err
}

// sameKeys reports whether two documents hold the same keys.
func sameKeys(a, b []byte) bool {
	var da, db struct {
		Keys []map[string]any `json:"keys"`
	}
	if json.Unmarshal(a, &da) != nil || json.Unmarshal(b, &db) != nil {
		return false
	}
	return slices.Equal(canonicalKeys(da.Keys), canonicalKeys(db.Keys))
}
