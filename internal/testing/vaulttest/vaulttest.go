// Package vaulttest is a stand-in for a HashiCorp Vault (or OpenBao) server
// with a PKI secrets engine, for tests. A real Vault cannot run here, so it
// speaks Vault's HTTP API for exactly the endpoints that package
// ca/upstream/vault uses, with the request and response shapes of Vault's
// API documentation (and of its PKI engine's code where the documentation
// is loose: sign-intermediate's pem_bundle, cert/ca_chain's string):
//
//   - GET  /v1/auth/token/lookup-self
//   - POST /v1/auth/token/renew-self
//   - POST /v1/auth/<approle mount>/login (role_id, secret_id)
//   - POST /v1/auth/<kubernetes mount>/login (role, jwt)
//   - POST /v1/auth/<cert mount>/login (name), with a TLS client certificate
//   - POST /v1/<pki mount>/root/sign-intermediate
//   - GET  /v1/<pki mount>/cert/ca_chain and /v1/<pki mount>/ca_chain
//
// Errors are Vault's: a status code and {"errors": [...]}. The PKI engine
// is a real in-memory CA (a root, and optionally an intermediate below it
// that the mount issues from) that signs the CSR it is given. Test only.
//
//	v := vaulttest.New(t, vaulttest.Config{})
//	token := v.NewToken(vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
//	// point a client at v.URL() with token; v.Root() is the trust anchor
package vaulttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// maxRequest bounds a request body, as Vault's max_request_size does
// (32 MiB there; requests here are small).
const maxRequest = 1 << 20

// Config configures a [Server]. The zero value is a plain-HTTP server with
// its PKI engine at "pki", issuing from a self-signed root.
type Config struct {
	// PKIMount is where the PKI engine is mounted. Empty means "pki".
	PKIMount string

	// Namespace, when set, is the namespace every request must name in
	// X-Vault-Namespace; another (or none) is refused as Vault refuses a
	// path it does not know.
	Namespace string

	// Intermediate makes the mount issue from an intermediate CA below the
	// root, as a mount whose issuer was signed by another PKI is; the
	// mount's CA chain is then the intermediate and the root.
	Intermediate bool

	// TLS serves HTTPS with a certificate for 127.0.0.1 (see
	// [Server.CACertificate]) and asks for client certificates, for cert
	// auth.
	TLS bool

	// Now returns the current time, for token leases and certificate
	// lifetimes. Nil means time.Now.
	Now func() time.Time
}

// TokenParams describes a token made by [Server.NewToken] or given at a
// login.
type TokenParams struct {
	// TTL is the token's lease; 0 means it never expires (a root token).
	TTL time.Duration
	// Renewable allows renew-self.
	Renewable bool
	// MaxTTL caps the lease across renewals, from the token's creation; 0
	// means no cap.
	MaxTTL time.Duration
}

type token struct {
	TokenParams
	accessor string
	created  time.Time
	expires  time.Time // zero: never
}

// Tamper changes a JSON response about to be sent for path (such as
// "pki/root/sign-intermediate"): the decoded response object, whose "data"
// holds the fields. It lets tests send what a broken or hostile Vault
// would.
type Tamper func(path string, resp map[string]any)

// Server is a running stand-in. Its methods are safe for concurrent use.
type Server struct {
	cfg  Config
	srv  *httptest.Server
	root *x509.Certificate
	// issuer signs; key is its key. With Config.Intermediate it is below
	// root, otherwise it is root.
	issuer *x509.Certificate
	key    crypto.Signer

	mu         sync.Mutex
	tokens     map[string]*token
	approles   map[string]approle  // mount -> role
	kubeRoles  map[string]kubeRole // mount -> role
	certRoles  map[string]certRole // mount -> role
	requests   map[string]int      // path -> count
	tamper     Tamper
	rawBody    map[string][]byte // path -> body sent as it is
	statusCode map[string]int    // path -> status of rawBody
}

type approle struct {
	roleID, secretID string
	params           TokenParams
}

type kubeRole struct {
	role, jwt string
	params    TokenParams
}

type certRole struct {
	name   string
	pool   *x509.CertPool
	params TokenParams
}

// New starts a server that stops when the test ends.
func New(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Start starts a server, for code without a testing.TB (examples); Close
// stops it.
func Start(cfg Config) (*Server, error) {
	if cfg.PKIMount == "" {
		cfg.PKIMount = "pki"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{
		cfg: cfg, tokens: map[string]*token{}, approles: map[string]approle{}, kubeRoles: map[string]kubeRole{},
		certRoles: map[string]certRole{}, requests: map[string]int{}, rawBody: map[string][]byte{}, statusCode: map[string]int{},
	}
	now := cfg.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: pkix.Name{CommonName: "Vault Test Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if s.root, err = create(tmpl, tmpl, rootKey.Public(), rootKey); err != nil {
		return nil, err
	}
	s.issuer, s.key = s.root, rootKey
	if cfg.Intermediate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		s.key = key
		s.issuer, err = create(&x509.Certificate{
			SerialNumber: newSerial(), Subject: pkix.Name{CommonName: "Vault Test Intermediate"},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		}, s.root, key.Public(), rootKey)
		if err != nil {
			return nil, err
		}
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are what some tests want
	if cfg.TLS {
		s.srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// Sign signs tmpl for pub with the issuer's key, as no Vault would, for
// tests that make it answer wrong certificates.
func (s *Server) Sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = newSerial()
	}
	return create(tmpl, s.issuer, pub, s.key)
}

// PEM encodes certificates as Vault does: PEM blocks joined by one
// newline, trimmed.
func PEM(certs ...*x509.Certificate) string {
	parts := make([]string, len(certs))
	for i, c := range certs {
		parts[i] = certPEM(c)
	}
	return strings.Join(parts, "\n")
}

// URL is the server's address, the client's Vault address.
func (s *Server) URL() string { return s.srv.URL }

// CACertificate is the certificate of a TLS server, for the client to
// trust; nil without Config.TLS.
func (s *Server) CACertificate() *x509.Certificate {
	if s.srv.TLS == nil {
		return nil
	}
	return s.srv.Certificate()
}

// Client is an HTTP client that trusts the server.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Root is the root CA of the PKI engine, the trust anchor of what it signs.
func (s *Server) Root() *x509.Certificate { return s.root }

// Issuer is the CA that signs: the root, or with Config.Intermediate the
// intermediate below it.
func (s *Server) Issuer() *x509.Certificate { return s.issuer }

// NewToken makes a token as `vault token create` does and returns it.
func (s *Server) NewToken(p TokenParams) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newTokenLocked(p)
}

func (s *Server) newTokenLocked(p TokenParams) string {
	id := "hvs." + randomHex(12)
	tok := &token{TokenParams: p, accessor: randomHex(12), created: s.cfg.Now()}
	if p.TTL > 0 {
		tok.expires = tok.created.Add(p.TTL)
	}
	s.tokens[id] = tok
	return id
}

// RevokeToken revokes a token: it is refused from now on.
func (s *Server) RevokeToken(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, id)
}

// RevokeAll revokes every token made so far.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// AddAppRole enables AppRole login at auth/<mount>/login with one role
// whose role ID and secret ID are given; logins get tokens of p.
func (s *Server) AddAppRole(mount, roleID, secretID string, p TokenParams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.approles[mount] = approle{roleID: roleID, secretID: secretID, params: p}
}

// AddKubernetesRole enables Kubernetes login at auth/<mount>/login for one
// role and the one service account token jwt; logins get tokens of p.
func (s *Server) AddKubernetesRole(mount, role, jwt string, p TokenParams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kubeRoles[mount] = kubeRole{role: role, jwt: jwt, params: p}
}

// AddCertRole enables TLS certificate login at auth/<mount>/login for a
// role named name, trusting client certificates that chain to ca; logins
// get tokens of p. It needs Config.TLS.
func (s *Server) AddCertRole(mount, name string, ca *x509.Certificate, p TokenParams) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s.certRoles[mount] = certRole{name: name, pool: pool, params: p}
}

// SetTamper sets the function that changes JSON responses (nil: none).
func (s *Server) SetTamper(f Tamper) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = f
}

// SetRawResponse makes the server answer path with status and body as
// they are, whatever the request (nil body: back to normal).
func (s *Server) SetRawResponse(path string, status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if body == nil {
		delete(s.rawBody, path)
		return
	}
	s.rawBody[path], s.statusCode[path] = body, status
}

// Requests returns how many requests path received (such as
// "auth/approle/login"), answered or refused.
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return hex.EncodeToString(b)
}

// errorResponse sends Vault's error shape.
func errorResponse(w http.ResponseWriter, status int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"errors": msgs})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		errorResponse(w, http.StatusNotFound)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[path]++
	if body, ok := s.rawBody[path]; ok {
		w.WriteHeader(s.statusCode[path])
		w.Write(body)
		return
	}
	if r.Header.Get("X-Vault-Namespace") != s.cfg.Namespace {
		errorResponse(w, http.StatusForbidden, "permission denied")
		return
	}
	if r.Header.Get("X-Vault-Request") != "true" {
		// Vault refuses requests without it on some listeners (SSRF
		// protection); the client always sends it.
		errorResponse(w, http.StatusPreconditionFailed, "missing 'X-Vault-Request' header")
		return
	}
	read := r.Method == http.MethodGet
	write := r.Method == http.MethodPost || r.Method == http.MethodPut
	var body map[string]any
	if write {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequest)
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		if err := dec.Decode(&body); err != nil {
			errorResponse(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
			return
		}
	}
	switch {
	case read && path == "auth/token/lookup-self":
		s.lookupSelf(w, r)
	case write && path == "auth/token/renew-self":
		s.renewSelf(w, r, body)
	case write && strings.HasPrefix(path, "auth/") && strings.HasSuffix(path, "/login"):
		s.login(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "auth/"), "/login"), body)
	case write && path == s.cfg.PKIMount+"/root/sign-intermediate":
		if s.authorize(w, r) {
			s.signIntermediate(w, path, body)
		}
	case read && path == s.cfg.PKIMount+"/cert/ca_chain":
		// Unauthenticated in Vault.
		chain := s.chainPEM()
		s.reply(w, path, map[string]any{"data": map[string]any{
			"certificate": chain, "ca_chain": chain, "revocation_time": 0, "revocation_time_rfc3339": "",
		}})
	case read && path == s.cfg.PKIMount+"/ca_chain":
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		w.Write([]byte(s.chainPEM()))
	default:
		errorResponse(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
	}
}

// chainPEM is the mount's CA chain as Vault's cert/ca_chain gives it: the
// issuer, then its parents, PEM blocks joined by one newline, trimmed.
func (s *Server) chainPEM() string {
	certs := []*x509.Certificate{s.issuer}
	if s.issuer != s.root {
		certs = append(certs, s.root)
	}
	return PEM(certs...)
}

func certPEM(c *x509.Certificate) string {
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
}

// reply sends a JSON response after the tamper function saw it.
func (s *Server) reply(w http.ResponseWriter, path string, resp map[string]any) {
	base := map[string]any{
		"request_id": randomHex(16), "lease_id": "", "renewable": false, "lease_duration": 0,
		"data": nil, "wrap_info": nil, "warnings": nil, "auth": nil,
	}
	for k, v := range resp {
		base[k] = v
	}
	if s.tamper != nil {
		s.tamper(path, base)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(base)
}

// tokenOf returns the live token of r, or nil.
func (s *Server) tokenOf(r *http.Request) (string, *token) {
	id := r.Header.Get("X-Vault-Token")
	tok := s.tokens[id]
	if tok == nil {
		return id, nil
	}
	if !tok.expires.IsZero() && !s.cfg.Now().Before(tok.expires) {
		delete(s.tokens, id)
		return id, nil
	}
	return id, tok
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	if _, tok := s.tokenOf(r); tok == nil {
		errorResponse(w, http.StatusForbidden, "permission denied")
		return false
	}
	return true
}

func (s *Server) ttlLeft(tok *token) int {
	if tok.expires.IsZero() {
		return 0
	}
	return int(tok.expires.Sub(s.cfg.Now()).Round(time.Second) / time.Second)
}

func (s *Server) lookupSelf(w http.ResponseWriter, r *http.Request) {
	id, tok := s.tokenOf(r)
	if tok == nil {
		errorResponse(w, http.StatusForbidden, "permission denied")
		return
	}
	var expire any
	if !tok.expires.IsZero() {
		expire = tok.expires.UTC().Format(time.RFC3339Nano)
	}
	s.reply(w, "auth/token/lookup-self", map[string]any{"data": map[string]any{
		"accessor": tok.accessor, "creation_time": tok.created.Unix(), "creation_ttl": int(tok.TTL.Seconds()),
		"display_name": "token", "entity_id": "", "expire_time": expire, "explicit_max_ttl": int(tok.MaxTTL.Seconds()),
		"id": id, "issue_time": tok.created.UTC().Format(time.RFC3339Nano), "meta": nil, "num_uses": 0, "orphan": false,
		"path": "auth/token/create", "policies": []string{"default", "spiffe"}, "renewable": tok.Renewable,
		"ttl": s.ttlLeft(tok), "type": "service",
	}})
}

// authBlock is the "auth" object of a login or renewal.
func (s *Server) authBlock(id string, tok *token) map[string]any {
	return map[string]any{
		"client_token": id, "accessor": tok.accessor, "policies": []string{"default", "spiffe"},
		"token_policies": []string{"default", "spiffe"}, "metadata": nil, "lease_duration": s.ttlLeft(tok),
		"renewable": tok.Renewable, "entity_id": "", "token_type": "service", "orphan": true,
		"mfa_requirement": nil, "num_uses": 0,
	}
}

func (s *Server) renewSelf(w http.ResponseWriter, r *http.Request, body map[string]any) {
	id, tok := s.tokenOf(r)
	if tok == nil {
		errorResponse(w, http.StatusForbidden, "permission denied")
		return
	}
	if !tok.Renewable || tok.expires.IsZero() {
		errorResponse(w, http.StatusBadRequest, "lease is not renewable")
		return
	}
	increment := tok.TTL
	if v, ok := body["increment"]; ok {
		d, err := parseDuration(v)
		if err != nil {
			errorResponse(w, http.StatusBadRequest, err.Error())
			return
		}
		if d > 0 {
			increment = d
		}
	}
	now := s.cfg.Now()
	tok.expires = now.Add(increment)
	var warnings any
	if tok.MaxTTL > 0 && tok.expires.After(tok.created.Add(tok.MaxTTL)) {
		tok.expires = tok.created.Add(tok.MaxTTL)
		warnings = []string{"TTL of \"" + increment.String() + "\" exceeded the effective max_ttl; TTL value is capped accordingly"}
	}
	s.reply(w, "auth/token/renew-self", map[string]any{"auth": s.authBlock(id, tok), "warnings": warnings})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, mount string, body map[string]any) {
	str := func(k string) string { v, _ := body[k].(string); return v }
	var params TokenParams
	if role, ok := s.approles[mount]; ok {
		if str("role_id") == "" {
			errorResponse(w, http.StatusBadRequest, "missing role_id")
			return
		}
		if str("role_id") != role.roleID || str("secret_id") != role.secretID {
			errorResponse(w, http.StatusBadRequest, "invalid role or secret ID")
			return
		}
		params = role.params
	} else if role, ok := s.kubeRoles[mount]; ok {
		switch {
		case str("role") == "":
			errorResponse(w, http.StatusBadRequest, "missing role")
			return
		case str("jwt") == "":
			errorResponse(w, http.StatusBadRequest, "missing jwt")
			return
		case str("role") != role.role:
			errorResponse(w, http.StatusBadRequest, fmt.Sprintf("invalid role name %q", str("role")))
			return
		case str("jwt") != role.jwt:
			errorResponse(w, http.StatusForbidden, "permission denied")
			return
		}
		params = role.params
	} else if role, ok := s.certRoles[mount]; ok {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			errorResponse(w, http.StatusBadRequest, "client certificate must be supplied")
			return
		}
		inter := x509.NewCertPool()
		for _, c := range r.TLS.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		_, err := r.TLS.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: role.pool, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: s.cfg.Now()})
		if err != nil || (str("name") != "" && str("name") != role.name) {
			errorResponse(w, http.StatusBadRequest, "invalid certificate or no client certificate supplied")
			return
		}
		params = role.params
	} else {
		errorResponse(w, http.StatusNotFound, fmt.Sprintf("no handler for route \"auth/%s/login\". route entry not found.", mount))
		return
	}
	id := s.newTokenLocked(params)
	s.reply(w, "auth/"+mount+"/login", map[string]any{"auth": s.authBlock(id, s.tokens[id])})
}

// parseDuration reads a Vault duration: seconds as a number or a numeric
// string, or a Go duration string ("1h", "90s").
func parseDuration(v any) (time.Duration, error) {
	var s string
	switch v := v.(type) {
	case nil:
		return 0, nil
	case json.Number:
		s = v.String()
	case string:
		s = v
	default:
		return 0, fmt.Errorf("cannot parse %v as a duration", v)
	}
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("error parsing duration %q: %w", s, err)
	}
	return d, nil
}

// maxLeaseTTL is the mount's max lease TTL and the default TTL of a
// signed CA, as Vault's system default (32 days).
const maxLeaseTTL = 768 * time.Hour

// signIntermediate signs as Vault's pathIssuerSignIntermediate does with
// use_csr_values false: the subject and SANs come from the parameters, the
// key from the CSR, the lifetime from ttl truncated at the issuer's expiry.
func (s *Server) signIntermediate(w http.ResponseWriter, path string, body map[string]any) {
	str := func(k string) string { v, _ := body[k].(string); return v }
	format := str("format")
	if format == "" {
		format = "pem"
	}
	if format != "pem" && format != "pem_bundle" && format != "der" {
		errorResponse(w, http.StatusBadRequest, `The "format" path parameter must be "pem", "der" or "pem_bundle"`)
		return
	}
	block, _ := pem.Decode([]byte(str("csr")))
	if block == nil {
		errorResponse(w, http.StatusBadRequest, "certificate request could not be parsed")
		return
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil || csr.CheckSignature() != nil {
		errorResponse(w, http.StatusBadRequest, "certificate request could not be parsed")
		return
	}
	ttl, err := parseDuration(body["ttl"])
	if err != nil {
		errorResponse(w, http.StatusBadRequest, err.Error())
		return
	}
	if ttl == 0 {
		ttl = maxLeaseTTL
	}
	if ttl > maxLeaseTTL {
		errorResponse(w, http.StatusBadRequest, "ttl is larger than maximum allowed")
		return
	}
	now := s.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: str("common_name"), Organization: splitList(body["organization"])},
		NotBefore:    now.Add(-30 * time.Second),
		NotAfter:     now.Add(ttl),
		IsCA:         true, BasicConstraintsValid: true, MaxPathLen: -1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	if tmpl.NotAfter.After(s.issuer.NotAfter) {
		tmpl.NotAfter = s.issuer.NotAfter // Vault truncates at the issuer's expiry by default
	}
	if cn := str("common_name"); cn != "" && body["exclude_cn_from_sans"] != true {
		tmpl.DNSNames = []string{cn}
	}
	for _, u := range splitList(body["uri_sans"]) {
		parsed, err := url.Parse(u)
		if err != nil {
			errorResponse(w, http.StatusBadRequest, fmt.Sprintf("error parsing URI SAN %q: %v", u, err))
			return
		}
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	pub, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		errorResponse(w, http.StatusBadRequest, "unsupported key")
		return
	}
	skid := sha1.Sum(pub)
	tmpl.SubjectKeyId = skid[:]
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.issuer, csr.PublicKey, s.key)
	if err != nil {
		errorResponse(w, http.StatusInternalServerError, "error signing cert: "+err.Error())
		return
	}
	cert, _ := x509.ParseCertificate(der)
	// As certutil: the CA chain of a signing issuer that is not a
	// self-signed root is the issuer and its parents; empty for a root.
	var caChain []string
	if s.issuer != s.root {
		caChain = []string{certPEM(s.issuer), certPEM(s.root)}
	}
	data := map[string]any{
		"expiration":    cert.NotAfter.Unix(),
		"serial_number": colonHex(cert.SerialNumber.Bytes()),
		"issuing_ca":    certPEM(s.issuer),
		"ca_chain":      append([]string{certPEM(cert)}, caChain...),
	}
	switch format {
	case "pem":
		data["certificate"] = certPEM(cert)
	case "pem_bundle":
		data["certificate"] = strings.Join(append([]string{certPEM(cert)}, caChain...), "\n")
	case "der":
		data["certificate"] = b64(cert.Raw)
		data["issuing_ca"] = b64(s.issuer.Raw)
		data["ca_chain"] = []string{b64(cert.Raw)}
	}
	s.reply(w, path, map[string]any{"data": data, "warnings": []string{
		"This mount hasn't configured any authority information access (AIA) fields; this may make it harder for systems to find missing certificates in the chain or to validate revocation status of certificates. Consider updating /config/urls or the newly generated issuer with this information.",
	}})
}

// splitList reads a Vault comma-delimited list: a string or an array.
func splitList(v any) []string {
	var out []string
	switch v := v.(type) {
	case string:
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(parts, ":")
}

func b64(der []byte) string { return base64.StdEncoding.EncodeToString(der) }
