package oauthsvid

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// MaxRequestSize is the largest token request body, in bytes, that a
// Validator reads.
const MaxRequestSize = 64 << 10

// Error is a client authentication failure, with the OAuth error code to
// answer it with (RFC 6749 §5.2). Description is meant for the client and
// says nothing of the cause, which Unwrap gives for the logs.
type Error struct {
	// Code is "invalid_client" or "invalid_request".
	Code        string
	Description string
	Err         error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("oauthsvid: %s: %s", e.Code, e.Description)
	}
	return fmt.Sprintf("oauthsvid: %s: %s: %v", e.Code, e.Description, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func invalidClient(desc string, err error) error {
	return &Error{Code: "invalid_client", Description: desc, Err: err}
}

func invalidRequest(desc string, err error) error {
	return &Error{Code: "invalid_request", Description: desc, Err: err}
}

// Config configures a [Validator].
type Config struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414): a
	// JWT-SVID's aud must hold it and nothing else. Required.
	Issuer string

	// JWTBundles holds the JWT-SVID keys of the trusted trust domains,
	// keyed by trust domain (§6). Nil turns the spiffe_jwt method off.
	JWTBundles jwtbundle.Source

	// X509Bundles holds the X.509 authorities of the trusted trust
	// domains. Nil turns the spiffe_x509 method off. The server's TLS
	// configuration must request client certificates without verifying
	// them against Web PKI roots (tls.RequestClientCert): the Validator
	// verifies them against these bundles, and never against system roots
	// (§6.2.3).
	X509Bundles x509bundle.Source

	// Clients maps an authenticated SPIFFE ID to a registered client.
	// Required.
	Clients Clients

	// Logger receives refusals at debug level. Nil discards them.
	Logger *slog.Logger
}

// Validator authenticates token requests of clients that present SVIDs.
// It is safe for concurrent use.
type Validator struct {
	cfg Config
	log *slog.Logger
}

// NewValidator returns a Validator for cfg. It fails without Issuer,
// Clients, or at least one of JWTBundles and X509Bundles.
func NewValidator(cfg Config) (*Validator, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("oauthsvid: Issuer is required")
	case cfg.Clients == nil:
		return nil, errors.New("oauthsvid: Clients is required")
	case cfg.JWTBundles == nil && cfg.X509Bundles == nil:
		return nil, errors.New("oauthsvid: JWTBundles or X509Bundles is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Validator{cfg: cfg, log: log}, nil
}

// Methods returns the client authentication methods v supports, for the
// token_endpoint_auth_methods_supported metadata (§4).
func (v *Validator) Methods() []string {
	var m []string
	if v.cfg.JWTBundles != nil {
		m = append(m, MethodJWT)
	}
	if v.cfg.X509Bundles != nil {
		m = append(m, MethodX509)
	}
	return m
}

// AuthenticatedClient is a client that a token request authenticated.
type AuthenticatedClient struct {
	// ClientID is the registered client's identifier.
	ClientID string
	// ID is the SPIFFE ID of the SVID presented.
	ID spiffeid.ID
	// Method is MethodJWT or MethodX509.
	Method string
	// JWTSVID is the validated assertion, with the JWT-SVID method.
	JWTSVID *jwtsvid.SVID
}

// Authenticate authenticates the client of token request r: a POST with a
// form body of at most MaxRequestSize bytes, each parameter at most once,
// one authentication method only. With a client_assertion, the JWT-SVID
// method: client_assertion_type must be [AssertionType], and the JWT-SVID
// must validate against the bundle of its own trust domain with aud holding
// the issuer identifier alone. Otherwise, over mutual TLS, the X509-SVID
// method: the client certificate chain must verify as an X509-SVID against
// the X.509 bundle of its trust domain, and client_id must be its SPIFFE ID.
// Either way Config.Clients must recognize the ID. The form stays parsed in
// r.PostForm for the grant's own parameters.
//
// Errors are *Error values; pass them to [WriteError].
func (v *Validator) Authenticate(r *http.Request) (*AuthenticatedClient, error) {
	c, err := v.authenticate(r)
	if err != nil {
		v.log.LogAttrs(r.Context(), slog.LevelDebug, "client authentication refused", slog.Any("err", err))
		return nil, err
	}
	return c, nil
}

func (v *Validator) authenticate(r *http.Request) (*AuthenticatedClient, error) {
	if r.Method != http.MethodPost {
		return nil, invalidRequest("the token endpoint takes POST", nil)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("the body must be application/x-www-form-urlencoded", err)
	}
	r.Body = http.MaxBytesReader(nil, r.Body, MaxRequestSize)
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("malformed request body", err)
	}
	// RFC 6749 §3.2: no parameter more than once. Credentials are read from
	// the body only, never from the URL.
	for name, vals := range r.PostForm {
		if len(vals) > 1 {
			return nil, invalidRequest(fmt.Sprintf("parameter %s repeated", name), nil)
		}
	}
	// RFC 6749 §2.3: one authentication method per request.
	if r.Header.Get("Authorization") != "" || r.PostForm.Has("client_secret") {
		return nil, invalidRequest("more than one client authentication method", nil)
	}
	clientID := r.PostForm.Get("client_id")
	if r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type") {
		return v.authenticateJWT(r, clientID)
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return v.authenticateX509(r, clientID)
	}
	return nil, invalidClient("no SPIFFE client authentication", nil)
}

func (v *Validator) authenticateJWT(r *http.Request, clientID string) (*AuthenticatedClient, error) {
	if v.cfg.JWTBundles == nil {
		return nil, invalidClient("JWT-SVID client authentication is not supported", nil)
	}
	if t := r.PostForm.Get("client_assertion_type"); t != AssertionType {
		return nil, invalidClient("unsupported client_assertion_type", fmt.Errorf("type %q", t))
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return nil, invalidRequest("more than one client authentication method", nil)
	}
	// §3.1 rules 1, 2 and 4: a JWT-SVID with sub, aud and exp, not
	// expired, signed by a key of its own trust domain's bundle.
	svid, err := jwtsvid.ParseAndValidate(r.PostForm.Get("client_assertion"), v.cfg.JWTBundles, []string{v.cfg.Issuer})
	if err != nil {
		return nil, invalidClient("invalid client assertion", err)
	}
	// §3.1 rule 3: the issuer identifier is aud's sole value, so that an
	// assertion made for several servers is not accepted by any of them.
	if len(svid.Audience) != 1 || svid.Audience[0] != v.cfg.Issuer {
		return nil, invalidClient("invalid client assertion", fmt.Errorf("aud %q is not the issuer alone", svid.Audience))
	}
	id, err := v.cfg.Clients.Recognize(r.Context(), svid.ID, clientID)
	if err != nil {
		return nil, invalidClient("unknown client", err)
	}
	return &AuthenticatedClient{ClientID: id, ID: svid.ID, Method: MethodJWT, JWTSVID: svid}, nil
}

func (v *Validator) authenticateX509(r *http.Request, clientID string) (*AuthenticatedClient, error) {
	if v.cfg.X509Bundles == nil {
		return nil, invalidClient("X509-SVID client authentication is not supported", nil)
	}
	// §3.2 rules 1 to 4: path validation against the trust domain's own
	// authorities, one SPIFFE ID URI SAN, a leaf with digitalSignature.
	id, _, err := x509svid.Verify(r.TLS.PeerCertificates, v.cfg.X509Bundles)
	if err != nil {
		return nil, invalidClient("invalid client certificate", err)
	}
	// §3.2: client_id is required and is the certificate's SPIFFE ID.
	if clientID == "" {
		return nil, invalidRequest("client_id is required", nil)
	}
	if clientID != id.String() {
		return nil, invalidClient("client_id does not match the client certificate", fmt.Errorf("client_id %q, certificate %q", clientID, id))
	}
	registered, err := v.cfg.Clients.Recognize(r.Context(), id, clientID)
	if err != nil {
		return nil, invalidClient("unknown client", err)
	}
	return &AuthenticatedClient{ClientID: registered, ID: id, Method: MethodX509}, nil
}

// WriteError answers a failed token request as RFC 6749 §5.2 says: a JSON
// body with error and error_description, 401 for invalid_client and 400
// otherwise, never cached. An err that is not an *Error is answered as
// invalid_client.
func WriteError(w http.ResponseWriter, err error) {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		e = &Error{Code: "invalid_client", Description: "client authentication failed"}
	}
	status := http.StatusBadRequest
	if e.Code == "invalid_client" {
		status = http.StatusUnauthorized
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(body)
}
