package exchange

import (
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxAudiences bounds the audience parameters of a request.
const MaxAudiences = 16

// maxAudienceLen bounds one audience.
const maxAudienceLen = 1024

// Request is a token exchange request, as [ParseRequest] reads it.
type Request struct {
	// SubjectToken is the external JWT, or a launch handle.
	SubjectToken string
	// SubjectTokenType is the subject_token_type: TokenTypeJWT,
	// TokenTypeIDToken or TokenTypeLaunchHandle. Empty means a JWT.
	SubjectTokenType string
	// TokenType is what is asked for: TokenTypeJWT or TokenTypeX509SVID.
	TokenType string
	// Audience is the JWT-SVID's audience; not empty for TokenTypeJWT.
	Audience []string
	// PublicKey is the key of an X509-SVID, from the certificate request
	// whose signature it checked; not nil for TokenTypeX509SVID.
	PublicKey crypto.PublicKey
	// SPIFFEID is the SPIFFE ID asked for; zero lets the one entry that
	// applies decide.
	SPIFFEID spiffeid.ID
}

// A requestError is a request the endpoint refuses as malformed
// (invalid_request), or with the OAuth error code it names.
type requestError struct {
	code string
	msg  string
}

func (e *requestError) Error() string { return "exchange: " + e.code + ": " + e.msg }

func invalidRequest(format string, args ...any) error {
	return &requestError{code: "invalid_request", msg: fmt.Sprintf(format, args...)}
}

// ParseRequest reads the form body of a token exchange request (RFC 8693
// §2.1). Parameters other than audience appear at most once (RFC 6749 §3.2);
// unknown ones are ignored (RFC 6749 §3.2), but an actor_token is refused:
// delegation is not offered. Errors describe what is wrong and hold no
// secret.
func ParseRequest(body []byte) (Request, error) {
	if len(body) > MaxRequestSize {
		return Request{}, invalidRequest("the body is larger than %d bytes", MaxRequestSize)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Request{}, invalidRequest("the body is not a form")
	}
	one := func(name string) (string, error) {
		switch v := form[name]; len(v) {
		case 0:
			return "", nil
		case 1:
			return v[0], nil
		default:
			return "", invalidRequest("%s appears more than once", name)
		}
	}
	var p struct{ grant, token, tokenType, requested, csr, id, actor string }
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"grant_type", &p.grant}, {"subject_token", &p.token}, {"subject_token_type", &p.tokenType},
		{"requested_token_type", &p.requested}, {"csr", &p.csr}, {"spiffe_id", &p.id}, {"actor_token", &p.actor},
	} {
		if *f.dst, err = one(f.name); err != nil {
			return Request{}, err
		}
	}
	switch {
	case p.grant == "":
		return Request{}, invalidRequest("no grant_type")
	case p.grant != GrantType:
		return Request{}, &requestError{code: "unsupported_grant_type", msg: "grant_type must be " + GrantType}
	case p.token == "":
		return Request{}, invalidRequest("no subject_token")
	case p.tokenType != TokenTypeJWT && p.tokenType != TokenTypeIDToken && p.tokenType != TokenTypeLaunchHandle:
		return Request{}, invalidRequest("subject_token_type must be %s, %s or %s", TokenTypeJWT, TokenTypeIDToken, TokenTypeLaunchHandle)
	case p.actor != "" || form.Has("actor_token_type"):
		return Request{}, invalidRequest("actor tokens are not supported")
	}
	r := Request{SubjectToken: p.token, SubjectTokenType: p.tokenType, TokenType: p.requested}
	if r.TokenType == "" {
		r.TokenType = TokenTypeJWT
		if p.csr != "" {
			r.TokenType = TokenTypeX509SVID
		}
	}
	switch r.TokenType {
	case TokenTypeJWT:
		if p.csr != "" {
			return Request{}, invalidRequest("a csr is for an X509-SVID")
		}
		auds := form["audience"]
		if len(auds) == 0 {
			return Request{}, invalidRequest("a JWT-SVID needs an audience")
		}
		if len(auds) > MaxAudiences {
			return Request{}, invalidRequest("more than %d audiences", MaxAudiences)
		}
		for _, a := range auds {
			if a == "" || len(a) > maxAudienceLen || strings.ContainsFunc(a, isControl) {
				return Request{}, invalidRequest("an audience is empty, longer than %d bytes or holds control characters", maxAudienceLen)
			}
		}
		r.Audience = auds
	case TokenTypeX509SVID:
		if p.csr == "" {
			return Request{}, invalidRequest("an X509-SVID needs a csr")
		}
		if r.PublicKey, err = ParseCSR(p.csr); err != nil {
			return Request{}, invalidRequest("%v", err)
		}
	default:
		return Request{}, invalidRequest("requested_token_type must be %s or %s", TokenTypeJWT, TokenTypeX509SVID)
	}
	if p.id != "" {
		if r.SPIFFEID, err = spiffeid.FromString(p.id); err != nil {
			return Request{}, invalidRequest("spiffe_id: %v", err)
		}
	}
	return r, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// ParseCSR decodes a PKCS #10 certificate request sent as base64url DER
// (padded or not), checks its signature and returns its public key. Only
// the key is used: the subject, SANs and extensions it asks for are
// ignored.
func ParseCSR(s string) (crypto.PublicKey, error) {
	der, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, errors.New("csr is not base64url")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	return csr.PublicKey, nil
}
