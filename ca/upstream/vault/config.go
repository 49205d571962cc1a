package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/bodylimit"
	"github.com/spiffekit/spiffekit/internal/pemutil"
)

// Default mount points, SPIRE's defaults.
const (
	DefaultPKIMount        = "pki"
	DefaultAppRoleMount    = "approle"
	DefaultKubernetesMount = "kubernetes"
	DefaultCertMount       = "cert"
)

const (
	// maxResponse bounds a response body from Vault.
	maxResponse = 1 << 20
	// maxFileSize bounds the files a Client reads (CA certificates, client
	// certificate and key, service account token).
	maxFileSize = 1 << 20
	// requestTimeout bounds one request to Vault, retries included.
	requestTimeout = 60 * time.Second
)

var errTooLarge = fmt.Errorf("response body over %d bytes", maxResponse)

// Config configures a [Client]. Its fields are SPIRE's UpstreamAuthority
// "vault" keys; unlike SPIRE, nothing is read from VAULT_* environment
// variables (a program may do so, as spiffe-server does).
type Config struct {
	// Address is the URL of the Vault or OpenBao server, such as
	// https://vault.example.org:8200 (SPIRE's vault_addr). Required.
	Address string

	// Namespace is the Vault Enterprise or OpenBao namespace sent in
	// X-Vault-Namespace (namespace). Empty means none.
	Namespace string

	// PKIMount is the path the PKI secrets engine is mounted at
	// (pki_mount_point). Empty means [DefaultPKIMount].
	PKIMount string

	// CACertFile is a PEM file of the CA certificates that verify Vault's
	// TLS certificate (ca_cert_path). Empty means the system roots.
	CACertFile string

	// InsecureSkipVerify accepts any TLS certificate from Vault
	// (insecure_skip_verify): a man in the middle could then sign the
	// trust domain's CAs. For tests only.
	InsecureSkipVerify bool

	// Auth is how the client logs in: a [*TokenAuth], [*AppRoleAuth],
	// [*KubernetesAuth] or [*CertAuth]. Required.
	Auth Auth

	// Logger receives logins, renewals and their failures, never a
	// secret. Nil discards them.
	Logger *slog.Logger

	// Now returns the current time, for token leases and the validity of
	// what Vault signs. Nil means time.Now.
	Now func() time.Time
}

// An Auth is a way to log in to Vault: [*TokenAuth], [*AppRoleAuth],
// [*KubernetesAuth] or [*CertAuth].
type Auth interface {
	// login returns a token and its lease.
	login(ctx context.Context, c *api.Client) (lease, error)
	// method names the method in logs and errors.
	method() string
	// check refuses a configuration that cannot work, and returns a copy
	// with the defaults filled in.
	check() (Auth, error)
}

// lease is a token and what Vault said of it.
type lease struct {
	token     string
	renewable bool
	ttl       time.Duration // 0: it never expires
}

// TokenAuth logs in with a token given by the operator (SPIRE's
// token_auth). The token is looked up at start to learn its lease; it can
// be renewed while Vault allows, but not replaced.
type TokenAuth struct {
	// Token is the Vault token (token). Required.
	Token string
}

// AppRoleAuth logs in with an AppRole's role ID and secret ID at
// auth/<Mount>/login (SPIRE's approle_auth).
type AppRoleAuth struct {
	// Mount is where the AppRole method is mounted
	// (approle_auth_mount_point). Empty means [DefaultAppRoleMount].
	Mount string
	// RoleID is the role ID (approle_id). Required.
	RoleID string
	// SecretID is the secret ID (approle_secret_id); empty for a role
	// that binds none.
	SecretID string
}

// KubernetesAuth logs in with a Kubernetes service account token at
// auth/<Mount>/login (SPIRE's k8s_auth). The token file is read at each
// login, so that a projected token that kubelet rotates is followed.
type KubernetesAuth struct {
	// Mount is where the Kubernetes method is mounted
	// (k8s_auth_mount_point). Empty means [DefaultKubernetesMount].
	Mount string
	// Role is the Vault role to log in as (k8s_auth_role_name). Required.
	Role string
	// TokenFile is the service account token's file (token_path).
	// Required.
	TokenFile string
}

// CertAuth logs in with a TLS client certificate at auth/<Mount>/login
// (SPIRE's cert_auth). The certificate is presented on every connection.
type CertAuth struct {
	// Mount is where the TLS certificate method is mounted
	// (cert_auth_mount_point). Empty means [DefaultCertMount].
	Mount string
	// Role names the certificate role to log in as (cert_auth_role_name);
	// empty lets Vault try every role.
	Role string
	// CertFile and KeyFile are the PEM client certificate (then its
	// intermediates) and its key (client_cert_path, client_key_path).
	// Required.
	CertFile, KeyFile string
}

// Client is a [ca.UpstreamAuthority] that has Vault's PKI engine sign the
// CAs. Create it with [New]; [Client.Run] keeps its token renewed. It is
// safe for concurrent use; its calls to Vault are serialised, one token
// being in use at a time.
type Client struct {
	api       *api.Client
	transport *http.Transport
	auth      Auth
	mount     string
	log       *slog.Logger
	now       func() time.Time

	// mu serialises the calls to Vault, so that a renewal or a login
	// never races a signature for the token.
	mu  sync.Mutex
	tok *tokenState // nil: not logged in
}

var _ ca.UpstreamAuthority = (*Client)(nil)

// New checks cfg and builds a client. It reads the CA and client
// certificate files, but connects to nothing: the first login happens at
// the first [Client.MintX509CA] or in [Client.Run].
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.Address)
	switch {
	case cfg.Address == "":
		return nil, errors.New("vault: the address is missing")
	case err != nil:
		return nil, fmt.Errorf("vault: bad address: %w", err)
	case u.Scheme != "https" && u.Scheme != "http", u.Host == "":
		return nil, fmt.Errorf("vault: address %q is not an http or https URL", cfg.Address)
	case cfg.Auth == nil:
		return nil, errors.New("vault: no authentication method")
	}
	mount, err := cleanMount(cfg.PKIMount, DefaultPKIMount)
	if err != nil {
		return nil, fmt.Errorf("vault: PKI mount: %w", err)
	}
	auth, err := cfg.Auth.check()
	if err != nil {
		return nil, fmt.Errorf("vault: %s auth: %w", cfg.Auth.method(), err)
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.InsecureSkipVerify}
	if cfg.CACertFile != "" {
		b, err := atomicfile.Read(cfg.CACertFile, maxFileSize)
		if err != nil {
			return nil, fmt.Errorf("vault: cannot read CA certificates: %w", err)
		}
		certs, err := pemutil.ParseCertificates(b)
		if err != nil {
			return nil, fmt.Errorf("vault: cannot parse CA certificates: %w", err)
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		for _, c := range certs {
			tlsConfig.RootCAs.AddCert(c)
		}
	}
	if c, ok := auth.(*CertAuth); ok {
		pair, err := c.load()
		if err != nil {
			return nil, fmt.Errorf("vault: cert auth: %w", err)
		}
		tlsConfig.Certificates = []tls.Certificate{pair}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	httpClient := &http.Client{
		Transport: limitedTransport{transport},
		// Vault's client follows a standby's redirects itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	vc, err := api.NewClient(&api.Config{
		Address:    cfg.Address,
		HttpClient: httpClient,
		MaxRetries: 2,
		Timeout:    requestTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	// NewClient takes VAULT_TOKEN and VAULT_NAMESPACE from the
	// environment: only the configuration counts here.
	vc.ClearToken()
	vc.ClearNamespace()
	if cfg.Namespace != "" {
		vc.SetNamespace(cfg.Namespace)
	}
	c := &Client{api: vc, transport: transport, auth: auth, mount: mount, log: cfg.Logger, now: cfg.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Close closes the client's idle connections to Vault. The client remains
// usable; it owns no goroutine.
func (c *Client) Close() error {
	c.transport.CloseIdleConnections()
	return nil
}

// cleanMount checks a mount path and returns it without surrounding
// slashes, or def when it is empty.
func cleanMount(m, def string) (string, error) {
	m = strings.Trim(m, "/")
	if m == "" {
		return def, nil
	}
	for seg := range strings.SplitSeq(m, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "?#%\\ \t\r\n") {
			return "", fmt.Errorf("%q is not a mount path", m)
		}
	}
	return m, nil
}

// limitedTransport bounds the body of every response.
type limitedTransport struct{ rt http.RoundTripper }

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if err := bodylimit.Limit(resp, maxResponse, errTooLarge); err != nil {
		return nil, err
	}
	return resp, nil
}

func (a *TokenAuth) method() string { return "token" }

func (a *TokenAuth) check() (Auth, error) {
	if a.Token == "" {
		return nil, errors.New("the token is missing")
	}
	c := *a
	return &c, nil
}

func (a *TokenAuth) login(ctx context.Context, c *api.Client) (lease, error) {
	c.SetToken(a.Token)
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return lease{}, fmt.Errorf("token lookup: %w", describe(err))
	}
	if s == nil {
		return lease{}, errors.New("token lookup answered nothing")
	}
	renewable, err := s.TokenIsRenewable()
	if err != nil {
		return lease{}, fmt.Errorf("token lookup: %w", err)
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return lease{}, fmt.Errorf("token lookup: %w", err)
	}
	if ttl < 0 {
		return lease{}, errors.New("token lookup: negative ttl")
	}
	return lease{token: a.Token, renewable: renewable, ttl: ttl}, nil
}

func (a *AppRoleAuth) method() string { return "approle" }

func (a *AppRoleAuth) check() (_ Auth, err error) {
	c := *a
	if c.Mount, err = cleanMount(c.Mount, DefaultAppRoleMount); err != nil {
		return nil, err
	}
	if c.RoleID == "" {
		return nil, errors.New("the role ID is missing")
	}
	return &c, nil
}

func (a *AppRoleAuth) login(ctx context.Context, c *api.Client) (lease, error) {
	body := map[string]any{"role_id": a.RoleID}
	if a.SecretID != "" {
		body["secret_id"] = a.SecretID
	}
	return loginAt(ctx, c, a.Mount, body)
}

func (a *KubernetesAuth) method() string { return "kubernetes" }

func (a *KubernetesAuth) check() (_ Auth, err error) {
	c := *a
	if c.Mount, err = cleanMount(c.Mount, DefaultKubernetesMount); err != nil {
		return nil, err
	}
	switch {
	case c.Role == "":
		return nil, errors.New("the role is missing")
	case c.TokenFile == "":
		return nil, errors.New("the service account token file is missing")
	}
	return &c, nil
}

func (a *KubernetesAuth) login(ctx context.Context, c *api.Client) (lease, error) {
	b, err := atomicfile.Read(a.TokenFile, maxFileSize)
	if err != nil {
		return lease{}, fmt.Errorf("cannot read the service account token: %w", err)
	}
	jwt := strings.TrimSpace(string(b))
	if jwt == "" {
		return lease{}, fmt.Errorf("the service account token file %s is empty", a.TokenFile)
	}
	return loginAt(ctx, c, a.Mount, map[string]any{"role": a.Role, "jwt": jwt})
}

func (a *CertAuth) method() string { return "cert" }

func (a *CertAuth) check() (_ Auth, err error) {
	c := *a
	if c.Mount, err = cleanMount(c.Mount, DefaultCertMount); err != nil {
		return nil, err
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("the client certificate or key file is missing")
	}
	return &c, nil
}

// load reads the client certificate and key.
func (a *CertAuth) load() (tls.Certificate, error) {
	certPEM, err := atomicfile.Read(a.CertFile, maxFileSize)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot read the client certificate: %w", err)
	}
	keyPEM, err := atomicfile.ReadPrivate(a.KeyFile, maxFileSize)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot read the client key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("bad client certificate or key: %w", err)
	}
	return pair, nil
}

func (a *CertAuth) login(ctx context.Context, c *api.Client) (lease, error) {
	body := map[string]any{}
	if a.Role != "" {
		body["name"] = a.Role
	}
	return loginAt(ctx, c, a.Mount, body)
}

// loginAt logs in at auth/<mount>/login with body.
func loginAt(ctx context.Context, c *api.Client, mount string, body map[string]any) (lease, error) {
	s, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", body)
	if err != nil {
		return lease{}, err
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return lease{}, fmt.Errorf("auth/%s/login answered no token", mount)
	}
	if s.Auth.LeaseDuration < 0 {
		return lease{}, fmt.Errorf("auth/%s/login answered a negative lease", mount)
	}
	return lease{token: s.Auth.ClientToken, renewable: s.Auth.Renewable, ttl: time.Duration(s.Auth.LeaseDuration) * time.Second}, nil
}
