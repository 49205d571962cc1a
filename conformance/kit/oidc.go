package kit

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DiscoveryPath is where an OpenID Connect provider serves its discovery
// document, below its issuer URL (OpenID Connect Discovery 1.0 §4).
const DiscoveryPath = "/.well-known/openid-configuration"

// OIDCConfig says which OpenID Connect discovery endpoint to check.
type OIDCConfig struct {
	// URL is the issuer URL, or the discovery document's URL (the issuer
	// followed by DiscoveryPath).
	URL string
	// Roots are the roots the server certificates must chain to; nil
	// means the system's.
	Roots *x509.CertPool
	// Timeout bounds every request; zero means DefaultTimeout.
	Timeout time.Duration
	// RotationWait, when positive, fetches the JWKS again every
	// PollInterval for that long, until its keys change, and checks the
	// keys kept between the two versions (OIDC rule 12).
	RotationWait time.Duration
	// PollInterval is the interval of those fetches; zero means
	// DefaultPollInterval.
	PollInterval time.Duration
}

// CheckOIDC checks a live OpenID Connect discovery endpoint, as a JWT-SVID
// issuer publishes its keys: the discovery document (OpenID Connect
// Discovery 1.0), the JWK Set at its jwks_uri (RFC 7517, and the JWT-SVID
// key rules), and with a rotation wait the keys kept across a change. It
// only sends GETs, each bounded by cfg.Timeout.
//
// It refuses to run, returning an error and no report, on a URL that is
// not an absolute http or https URL, or when it cannot reach the
// discovery endpoint at all (no connection, a TLS failure).
func CheckOIDC(ctx context.Context, cfg OIDCConfig) (*Report, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("kit: OIDC issuer URL %q: want an absolute http or https URL", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	issuer, discoveryURL := strings.TrimSuffix(cfg.URL, DiscoveryPath), cfg.URL
	if issuer == cfg.URL {
		issuer = strings.TrimSuffix(cfg.URL, "/")
		discoveryURL = issuer + DiscoveryPath
	}
	o := &oidcCheck{cfg: cfg, r: NewReport(ModeOIDC, cfg.URL)}
	doc, err := o.get(ctx, discoveryURL)
	if err != nil {
		return nil, fmt.Errorf("kit: cannot reach the OIDC discovery endpoint %s: %w; refusing to check it", discoveryURL, err)
	}
	o.checkRedirects("discovery", doc, true)
	o.checkTLS(ctx, "discovery", discoveryURL)
	if doc.refused {
		o.r.na("OIDC rule 1", "discovery", "the redirect's target was not followed (OIDC rule 14)")
		o.r.Finish()
		return o.r, nil
	}
	var members map[string]json.RawMessage
	ok := doc.status == http.StatusOK && json.Unmarshal(doc.body, &members) == nil && members != nil
	o.r.add("OIDC rule 1", "discovery", ok, "GET %s: status %d, %d bytes, a JSON object: %v", discoveryURL, doc.status, len(doc.body), members != nil)
	if !ok {
		o.r.Finish()
		return o.r, nil
	}
	o.r.add("OIDC rule 2", "discovery", doc.mediaType == "application/json", "Content-Type %q", doc.mediaType)
	o.checkDiscovery(members, issuer)
	jwksURI := stringMember(members, "jwks_uri")
	if jwksURI == "" {
		o.r.Finish()
		return o.r, nil
	}
	if !sameServer(discoveryURL, jwksURI) {
		o.checkTLS(ctx, "JWKS", jwksURI)
	}
	first := o.fetchJWKS(ctx, "JWKS", jwksURI)
	if first != nil && cfg.RotationWait > 0 {
		o.watch(ctx, jwksURI, first)
	} else {
		o.r.na("OIDC rule 12", "JWKS over time", "no rotation wait")
	}
	o.r.Finish()
	return o.r, nil
}

// oidcCheck is one run of CheckOIDC.
type oidcCheck struct {
	cfg OIDCConfig
	r   *Report
}

// fetched is the answer to one GET.
type fetched struct {
	status    int
	mediaType string
	body      []byte // at most maxBundleSize+1 bytes
	redirects []redirect
	refused   bool // the last redirect was not followed (OIDC rule 14)
}

// redirect is one redirect of a GET: its status, where it came from and
// where it led.
type redirect struct {
	status   int
	from, to *url.URL
}

// get makes one GET bounded by the timeout, following at most
// maxRedirects redirects, and none that leaves https (OIDC rule 14).
func (o *oidcCheck) get(ctx context.Context, target string) (*fetched, error) {
	transport := &http.Transport{
		TLSClientConfig:     tlsClientConfig(o.cfg.Roots),
		TLSHandshakeTimeout: o.cfg.Timeout,
		DisableKeepAlives:   true,
		Proxy:               nil,
	}
	defer transport.CloseIdleConnections()
	f := &fetched{}
	client := &http.Client{
		Transport: transport,
		Timeout:   o.cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			hop := redirect{from: via[len(via)-1].URL, to: req.URL}
			if req.Response != nil {
				hop.status = req.Response.StatusCode
			}
			f.redirects = append(f.redirects, hop)
			if !hop.allowed() || len(f.redirects) > maxRedirects {
				f.refused = true
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if f.body, err = io.ReadAll(io.LimitReader(resp.Body, maxBundleSize+1)); err != nil {
		return nil, err
	}
	f.status = resp.StatusCode
	f.mediaType, _, _ = mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return f, nil
}

// allowed reports whether a redirect keeps to https: its target is https,
// or it leaves http on a loopback host (a test setup) for http.
func (h redirect) allowed() bool {
	return h.to.Scheme == "https" || (h.from.Scheme == "http" && isLoopback(h.from.Hostname()) && h.to.Scheme == "http")
}

// checkRedirects checks OIDC rule 13 on the discovery document's GET (no
// redirect), and OIDC rule 14 on every redirect of a GET.
func (o *oidcCheck) checkRedirects(name string, f *fetched, discovery bool) {
	if discovery {
		if len(f.redirects) == 0 {
			o.r.add("OIDC rule 13", name, true, "answered at its own URL, status %d", f.status)
		} else {
			o.r.add("OIDC rule 13", name, false, "answered by a redirect: %d to %s", f.redirects[0].status, f.redirects[0].to.Redacted())
		}
	}
	if len(f.redirects) == 0 {
		o.r.na("OIDC rule 14", name, "no redirect")
		return
	}
	for i, h := range f.redirects {
		subject := fmt.Sprintf("%s redirect %d", name, i+1)
		switch {
		case i == maxRedirects:
			o.r.add("OIDC rule 14", subject, false, "more than %d redirects: %d to %s not followed", maxRedirects, h.status, h.to.Redacted())
		case h.to.Scheme == "https":
			o.r.add("OIDC rule 14", subject, true, "%d to %s", h.status, h.to.Redacted())
		case h.allowed():
			o.r.na("OIDC rule 14", subject, "%d from http to %s on a loopback host, a test setup", h.status, h.to.Redacted())
		default:
			o.r.add("OIDC rule 14", subject, false, "%d from %s to %s, not https: not followed", h.status, h.from.Redacted(), h.to.Redacted())
		}
	}
}

// checkTLS checks OIDC rule 15 on the server of target: TLS 1.2 or 1.3
// negotiated, and TLS 1.1 refused.
func (o *oidcCheck) checkTLS(ctx context.Context, name, target string) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "https" {
		o.r.na("OIDC rule 15", name, "%q is not an https URL (OIDC rule 4)", target)
		return
	}
	p := probeTLS(ctx, u, tlsClientConfig(o.cfg.Roots), o.cfg.Timeout)
	if p.err != nil {
		o.r.add("OIDC rule 15", name+" TLS", false, "handshake with %s: %v", u.Host, p.err)
		return
	}
	o.r.add("OIDC rule 15", name+" TLS", p.state.Version >= tls.VersionTLS12, "%s negotiated %s with %s", u.Host, tls.VersionName(p.state.Version), tls.CipherSuiteName(p.state.CipherSuite))
	o.r.add("OIDC rule 15", name+" TLS 1.1", p.legacyErr != nil, "%s, a handshake offering at most TLS 1.1: %s", u.Host, describeTLS(p.legacyErr))
}

// sameServer reports whether two URLs name the same scheme, host and
// port.
func sameServer(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	return errA == nil && errB == nil && ua.Scheme == ub.Scheme && strings.EqualFold(ua.Host, ub.Host)
}

// checkDiscovery checks OIDC rules 3 to 7 on the discovery document.
func (o *oidcCheck) checkDiscovery(doc map[string]json.RawMessage, issuer string) {
	got := stringMember(doc, "issuer")
	o.r.add("OIDC rule 3", "issuer", got == issuer, "issuer %q, fetched for %q", got, issuer)
	o.checkHTTPS("issuer", got, true)
	jwksURI := stringMember(doc, "jwks_uri")
	if jwksURI == "" {
		o.r.add("OIDC rule 4", "jwks_uri", false, "no jwks_uri")
	} else {
		o.checkHTTPS("jwks_uri", jwksURI, false)
	}

	algs, ok := stringArray(doc, "id_token_signing_alg_values_supported")
	o.r.add("OIDC rule 5a", "id_token_signing_alg_values_supported", ok && len(algs) > 0 && !slices.ContainsFunc(algs, isNone), "%v (present and an array of strings: %v)", algs, ok)
	o.r.add("OIDC rule 5b", "id_token_signing_alg_values_supported", slices.Contains(algs, "RS256"), "%v", algs)
	types, ok := stringArray(doc, "response_types_supported")
	o.r.add("OIDC rule 6", "response_types_supported", ok && len(types) > 0, "%v (present and an array of strings: %v)", types, ok)
	subjects, ok := stringArray(doc, "subject_types_supported")
	valid := ok && len(subjects) > 0
	for _, s := range subjects {
		valid = valid && (s == "public" || s == "pairwise")
	}
	o.r.add("OIDC rule 7", "subject_types_supported", valid, "%v (present and an array of strings: %v)", subjects, ok)
}

// checkHTTPS checks OIDC rule 4 on one URL of the document: https (http
// on a loopback host is a test setup, to which the rule does not apply),
// and for the issuer no query or fragment.
func (o *oidcCheck) checkHTTPS(subject, raw string, issuer bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		o.r.add("OIDC rule 4", subject, false, "%q is not an absolute URL", raw)
		return
	}
	if issuer && (u.RawQuery != "" || u.Fragment != "") {
		o.r.add("OIDC rule 4", subject, false, "%q has a query or a fragment", raw)
		return
	}
	if u.Scheme == "http" && isLoopback(u.Hostname()) {
		o.r.na("OIDC rule 4", subject, "%q: http on a loopback host, a test setup", raw)
		return
	}
	o.r.add("OIDC rule 4", subject, u.Scheme == "https", "%q", raw)
}

// fetchJWKS fetches and checks the JWK Set at target: its redirects
// (OIDC rule 14), its Content-Type (OIDC rule 16) and its keys; it returns
// the keys by kid (nil when the set is not one).
func (o *oidcCheck) fetchJWKS(ctx context.Context, name, target string) map[string]json.RawMessage {
	f, err := o.get(ctx, target)
	if err != nil {
		o.r.add("OIDC rule 8", name, false, "GET %s: %v", target, err)
		return nil
	}
	o.checkRedirects(name, f, false)
	if f.refused {
		o.r.na("OIDC rule 8", name, "the redirect's target was not followed (OIDC rule 14)")
		return nil
	}
	keys := o.checkJWKS(name, target, f.status, f.body)
	if keys != nil {
		o.r.add("OIDC rule 16", name, f.mediaType == "application/json" || f.mediaType == "application/jwk-set+json", "Content-Type %q", f.mediaType)
	}
	return keys
}

// checkJWKS checks OIDC rules 8 to 11 and Bundle rules 12 and 16 on a
// JWK Set served with the given status.
func (o *oidcCheck) checkJWKS(name, target string, status int, body []byte) map[string]json.RawMessage {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	ok := status == http.StatusOK && json.Unmarshal(body, &set) == nil && set.Keys != nil
	o.r.add("OIDC rule 8", name, ok, "GET %s: status %d, %d bytes, a keys array: %v", target, status, len(body), set.Keys != nil)
	if !ok {
		return nil
	}
	byKid := map[string]json.RawMessage{}
	for i, raw := range set.Keys {
		subject := fmt.Sprintf("%s keys[%d]", name, i)
		var key map[string]json.RawMessage
		if err := json.Unmarshal(raw, &key); err != nil || key == nil {
			o.r.add("Bundle rule 12", subject, false, "not a JSON object")
			continue
		}
		kty := stringMember(key, "kty")
		var jwk jose.JSONWebKey
		err := jwk.UnmarshalJSON(raw)
		usable := err == nil && jwk.Valid()
		if usable && !jwk.IsPublic() {
			jwk = jwk.Public()
			usable = jwk.Valid()
		}
		o.r.add("Bundle rule 12", subject, kty != "" && usable, "kty %q, a usable public key: %v (%v)", kty, usable, err)
		switch kid := stringMember(key, "kid"); {
		case kid == "":
			o.r.add("Bundle rule 16", subject, false, "JWT-SVID key without kid")
		case byKid[kid] != nil:
			o.r.add("Bundle rule 16", subject, false, "kid %q twice", kid)
		default:
			byKid[kid] = raw
			o.r.add("Bundle rule 16", subject, true, "kid %q", kid)
		}
		if _, set := key["use"]; set {
			use := stringMember(key, "use")
			o.r.add("OIDC rule 9", subject, use == "sig", "use %q", use)
		} else {
			o.r.na("OIDC rule 9", subject, "no use")
		}
		if _, set := key["alg"]; set && usable {
			alg := stringMember(key, "alg")
			o.r.add("OIDC rule 10", subject, algFits(alg, jwk.Key), "alg %q on a %s key", alg, kty)
		} else if set {
			o.r.na("OIDC rule 10", subject, "not a usable key (Bundle rule 12)")
		} else {
			o.r.na("OIDC rule 10", subject, "no alg")
		}
		var private []string
		for m := range key {
			if slices.Contains(privateParams, m) {
				private = append(private, m)
			}
		}
		sort.Strings(private)
		o.r.add("OIDC rule 11", subject, len(private) == 0, "private key members %v", private)
	}
	return byKid
}

// watch fetches the JWKS every PollInterval until its keys change or
// RotationWait passes, checks the new version, and OIDC rule 12 between
// the two.
func (o *oidcCheck) watch(ctx context.Context, target string, first map[string]json.RawMessage) {
	deadline := time.Now().Add(o.cfg.RotationWait)
	ticker := time.NewTicker(o.cfg.PollInterval)
	defer ticker.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			o.r.na("OIDC rule 12", "JWKS over time", "stopped: %v", ctx.Err())
			return
		case <-ticker.C:
		}
		f, err := o.get(ctx, target)
		if err != nil || f.refused || f.status != http.StatusOK {
			continue
		}
		quiet := &oidcCheck{cfg: o.cfg, r: NewReport(ModeOIDC, target)}
		next := quiet.checkJWKS("JWKS (later)", target, f.status, f.body)
		if next == nil || sameKeySet(first, next) {
			continue
		}
		o.r.Merge(quiet.r)
		kept := 0
		for _, kid := range sortedKids(first) {
			later, ok := next[kid]
			if !ok {
				continue
			}
			kept++
			o.r.add("OIDC rule 12", "JWKS over time kid "+kid, sameJSON(first[kid], later), "kept across the rotation; same key: %v", sameJSON(first[kid], later))
		}
		if kept == 0 {
			o.r.na("OIDC rule 12", "JWKS over time", "no key kept across the rotation (kids %v, then %v)", sortedKids(first), sortedKids(next))
		}
		return
	}
	o.r.na("OIDC rule 12", "JWKS over time", "the keys did not change in %s", o.cfg.RotationWait)
}

// tlsClientConfig trusts roots (nil: the system's).
func tlsClientConfig(roots *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// stringArray returns an array-of-strings member, and whether it is one.
func stringArray(m map[string]json.RawMessage, name string) ([]string, bool) {
	var out []string
	raw, ok := m[name]
	if !ok || json.Unmarshal(raw, &out) != nil || out == nil {
		return nil, false
	}
	return out, true
}

func isNone(alg string) bool { return strings.EqualFold(alg, "none") }

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// algFits reports whether the JWS algorithm alg (RFC 7518 §3.1) is one of
// key's type and size.
func algFits(alg string, key any) bool {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, alg)
	case *ecdsa.PublicKey:
		want := map[int]string{256: "ES256", 384: "ES384", 521: "ES512"}[k.Curve.Params().BitSize]
		return alg == want
	default:
		// Ed25519 (OKP) and others: EdDSA, which JWT-SVID does not allow.
		return alg == "EdDSA"
	}
}

// sameKeySet reports whether two sets hold the same keys.
func sameKeySet(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for kid, ka := range a {
		kb, ok := b[kid]
		if !ok || !sameJSON(ka, kb) {
			return false
		}
	}
	return true
}

// sameJSON reports whether two JSON objects hold the same members.
func sameJSON(a, b json.RawMessage) bool {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return false
	}
	ca, _ := json.Marshal(ma)
	cb, _ := json.Marshal(mb)
	return string(ca) == string(cb)
}

func sortedKids(m map[string]json.RawMessage) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
