package svidcheck

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// WIT checks that token, a WIT-SVID a Signer returned or a program saved,
// names id and binds pub in its "cnf" claim, and returns its expiry and
// the kid of the key that signed it. It does not check the signature.
func WIT(token string, id spiffeid.ID, pub crypto.PublicKey) (time.Time, string, error) {
	var claims struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
		Cnf struct {
			JWK *jose.JSONWebKey `json:"jwk"`
		} `json:"cnf"`
	}
	kid, err := decode(token, "the WIT-SVID", "WIT-SVID", &claims)
	if err != nil {
		return time.Time{}, "", err
	}
	switch {
	case kid == "":
		return time.Time{}, "", errors.New("the WIT-SVID has no kid") // WIT rule 1
	case claims.Sub != id.String():
		return time.Time{}, "", fmt.Errorf("the WIT-SVID names %q, not %s", claims.Sub, id)
	case claims.Cnf.JWK == nil || !publickey.Equal(claims.Cnf.JWK.Key, pub):
		return time.Time{}, "", errors.New("the WIT-SVID binds another key")
	}
	return time.Unix(claims.Exp, 0), kid, nil
}

// JWTExpiry reads the "exp" claim and the header's "kid" of a JWT-SVID
// the issuer's Signer returned. It checks nothing else: the token is
// trusted, and its validity is judged with the CA's clock, which may
// differ from the issuer's.
func JWTExpiry(token string) (exp time.Time, kid string, err error) {
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if kid, err = decode(token, "token", "token", &claims); err != nil {
		return time.Time{}, "", err
	}
	return time.Unix(claims.Exp, 0), kid, nil
}

// decode splits token, a compact JWS, decodes its claims into claims and
// returns its header's kid. Its errors call the token subject ("the
// WIT-SVID is not a compact JWS") and its parts by name ("decoding the
// WIT-SVID's header").
func decode(token, subject, name string, claims any) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%s is not a compact JWS", subject)
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", fmt.Errorf("decoding the %s's header: %w", name, err)
	}
	var header struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(rawHeader, &header); err != nil {
		return "", fmt.Errorf("decoding the %s's header: %w", name, err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("decoding the %s's claims: %w", name, err)
	}
	if err := json.Unmarshal(payload, claims); err != nil {
		return "", fmt.Errorf("decoding the %s's claims: %w", name, err)
	}
	return header.Kid, nil
}
