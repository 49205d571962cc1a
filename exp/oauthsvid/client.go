package oauthsvid

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

const (
	// AssertionType is the client_assertion_type of a JWT-SVID client
	// assertion (draft-ietf-oauth-spiffe-client-auth-02 §3.1).
	AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"

	// MethodJWT, MethodX509 and MethodWIT are the client authentication
	// method names an authorization server advertises in
	// token_endpoint_auth_methods_supported (§4).
	MethodJWT  = "spiffe_jwt"
	MethodX509 = "spiffe_x509"
	MethodWIT  = "spiffe_wit"

	// MaxResponseSize is the largest token endpoint response, in bytes,
	// that Client reads.
	MaxResponseSize = 1 << 20
)

// Client requests tokens from an OAuth 2.0 token endpoint, authenticating
// with a JWT-SVID when JWTSource is set, and otherwise with the X509-SVID
// that HTTPClient presents over mutual TLS (see [MTLSHTTPClient]). Its
// fields must not change once it is in use; it is then safe for concurrent
// use.
type Client struct {
	// TokenURL is the token endpoint. Required.
	TokenURL string

	// Audience is the authorization server's issuer identifier, the sole
	// aud of the JWT-SVID (§3.1, rule 3). Required with JWTSource.
	Audience string

	// JWTSource gives JWT-SVIDs, such as a workloadapi.JWTSource. Nil
	// means the X509-SVID method.
	JWTSource jwtsvid.Source

	// ID is the SPIFFE ID to authenticate as. Zero means the source's
	// default identity for a JWT-SVID; it is required for the X.509 method,
	// where it is sent as client_id unless ClientID is set.
	ID spiffeid.ID

	// ClientID, when set, is sent as client_id: for example the URL of a
	// Client ID Metadata Document (§3.1.2). With a JWT-SVID and no
	// ClientID, no client_id is sent.
	ClientID string

	// HTTPClient sends the requests. Nil means http.DefaultClient, which
	// suits the JWT-SVID method only.
	HTTPClient *http.Client
}

// MTLSHTTPClient returns an HTTP client for the X509-SVID method: it
// presents the X509-SVID of svid as client certificate and checks the
// server's certificate against roots (nil: the system's), not against a
// SPIFFE bundle (§3.2).
func MTLSHTTPClient(svid x509svid.Source, roots *x509.CertPool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsconfig.MTLSWebClientConfig(svid, roots)
	return &http.Client{Transport: tr}
}

// Token is a successful token response (RFC 6749 §5.1).
type Token struct {
	AccessToken  string
	TokenType    string
	RefreshToken string
	Scope        string
	// ExpiresIn is the access token's lifetime, or zero when the server
	// did not say.
	ExpiresIn time.Duration
}

// TokenError is a token endpoint's error response (RFC 6749 §5.2).
type TokenError struct {
	// StatusCode is the HTTP status of the response.
	StatusCode int
	// Code is the error code, such as "invalid_client".
	Code        string
	Description string
}

func (e *TokenError) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("oauthsvid: token endpoint answered %d: %s", e.StatusCode, e.Code)
	}
	return fmt.Sprintf("oauthsvid: token endpoint answered %d: %s: %s", e.StatusCode, e.Code, e.Description)
}

// Token sends a token request with the parameters of params (such as
// grant_type and scope) and the client's authentication, and returns the
// token. A response with an error gives a *TokenError.
func (c *Client) Token(ctx context.Context, params url.Values) (*Token, error) {
	form, err := c.authenticate(ctx, params)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("oauthsvid: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oauthsvid: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("oauthsvid: reading the token response: %w", err)
	}
	if len(body) > MaxResponseSize {
		return nil, fmt.Errorf("oauthsvid: token response is larger than %d bytes", MaxResponseSize)
	}
	return parseTokenResponse(resp.StatusCode, resp.Header.Get("Content-Type"), body)
}

// authenticate returns a copy of params with the client authentication
// parameters added.
func (c *Client) authenticate(ctx context.Context, params url.Values) (url.Values, error) {
	if c.TokenURL == "" {
		return nil, errors.New("oauthsvid: TokenURL is required")
	}
	form := url.Values{}
	for k, v := range params {
		switch k {
		case "client_assertion", "client_assertion_type", "client_id", "client_secret":
			return nil, fmt.Errorf("oauthsvid: parameter %s is the client's to set", k)
		}
		form[k] = append([]string(nil), v...)
	}
	if c.ClientID != "" {
		form.Set("client_id", c.ClientID)
	}
	if c.JWTSource == nil {
		// §3.2: client_id is the SPIFFE ID of the X509-SVID.
		if c.ID.IsZero() && c.ClientID == "" {
			return nil, errors.New("oauthsvid: the X.509 method needs ID or ClientID")
		}
		if c.ClientID == "" {
			form.Set("client_id", c.ID.String())
		}
		return form, nil
	}
	if c.Audience == "" {
		return nil, errors.New("oauthsvid: Audience (the issuer identifier) is required")
	}
	// §3.1 rule 3: the issuer identifier is the sole audience.
	svid, err := c.JWTSource.FetchJWTSVID(ctx, jwtsvid.Params{Audience: c.Audience, Subject: c.ID})
	if err != nil {
		return nil, fmt.Errorf("oauthsvid: cannot get a JWT-SVID: %w", err)
	}
	form.Set("client_assertion_type", AssertionType)
	form.Set("client_assertion", svid.Marshal())
	return form, nil
}

// parseTokenResponse reads a token endpoint's answer (RFC 6749 §5.1, §5.2).
func parseTokenResponse(status int, contentType string, body []byte) (*Token, error) {
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
		if status != http.StatusOK {
			return nil, &TokenError{StatusCode: status, Code: "unknown_error", Description: "response is not JSON"}
		}
		return nil, fmt.Errorf("oauthsvid: token response has content type %q, not application/json", contentType)
	}
	if status != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
			return nil, &TokenError{StatusCode: status, Code: "unknown_error", Description: "malformed error response"}
		}
		return nil, &TokenError{StatusCode: status, Code: e.Error, Description: e.Description}
	}
	var t struct {
		AccessToken  string       `json:"access_token"`
		TokenType    string       `json:"token_type"`
		RefreshToken string       `json:"refresh_token"`
		Scope        string       `json:"scope"`
		ExpiresIn    *json.Number `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("oauthsvid: malformed token response: %w", err)
	}
	if t.AccessToken == "" || t.TokenType == "" {
		return nil, errors.New("oauthsvid: token response lacks access_token or token_type")
	}
	tok := &Token{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, Scope: t.Scope}
	if t.ExpiresIn != nil {
		secs, err := t.ExpiresIn.Int64()
		if err != nil || secs < 0 || secs > int64(100*365*24*time.Hour/time.Second) {
			return nil, errors.New("oauthsvid: token response has an invalid expires_in")
		}
		tok.ExpiresIn = time.Duration(secs) * time.Second
	}
	return tok, nil
}
