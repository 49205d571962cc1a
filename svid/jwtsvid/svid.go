package jwtsvid

import (
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/internal/jwtutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxTokenLength is the largest token, in bytes, that [ParseAndValidate] and
// [ParseInsecure] accept. Longer input is rejected before any decoding, so an
// unauthenticated peer cannot make the parser decode large headers (such as
// an x5c certificate chain) or claims. JWT-SVIDs are typically well under
// 2 KiB; 16 KiB also matches common limits on HTTP header lines and gRPC
// metadata.
const MaxTokenLength = 16 << 10

// SVID represents a JWT-SVID.
type SVID struct {
	// ID is the SPIFFE ID of the JWT-SVID as present in the 'sub' claim.
	ID spiffeid.ID
	// Audience is the intended recipients of JWT-SVID as present in the
	// 'aud' claim.
	Audience []string
	// Expiry is the expiration time of JWT-SVID as present in 'exp' claim,
	// in UTC.
	Expiry time.Time
	// Claims is the parsed claims from token. JSON numbers are float64.
	Claims map[string]any
	// Hint is an operator-specified string used to provide guidance on how
	// this identity should be used by a workload when more than one SVID is
	// returned.
	Hint string

	// token is the serialized JWT token.
	token string
}

// Marshal returns the JWT-SVID marshaled to a string. The returned value is
// the same token value originally passed to [ParseAndValidate] or
// [ParseInsecure].
func (svid *SVID) Marshal() string {
	return svid.token
}

// ParseAndValidate parses and validates a JWT-SVID token and returns the
// JWT-SVID. The JWT-SVID signature is verified using the JWT bundle source.
//
// It follows JWT steps S1-S9: the token must be at most [MaxTokenLength]
// bytes in JWS compact serialization (JWT rule 1); alg must be one of RS256,
// RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512 and is checked before
// anything else (JWT rule 3); typ, if present, must be JWT or JOSE (JWT rule
// 5); kid is required (JWT rule 4); sub must be a SPIFFE ID and exp must be
// present (JWT rules 6, 8). The key is looked up by kid in the bundle of the
// sub's trust domain only, never taken from the jku, jwk, x5u or x5c headers,
// and must fit alg: an RSA key of at least 2048 bits for RS* and PS*, an ECDSA
// key on P-256, P-384 or P-521 for ES256, ES384 or ES512 (JWT rule 3). After
// the signature, exp, nbf and iat are checked with a leeway of one minute
// (JWT rules 8, 9) and aud must contain one of audience.
//
// Stricter than go-spiffe (JWT rule 7): audience must hold at least one
// non-empty value, and a token without an aud claim is always rejected.
// go-spiffe skips the audience check when audience is empty.
func ParseAndValidate(token string, bundles jwtbundle.Source, audience []string) (*SVID, error) {
	if len(audience) == 0 {
		return nil, errors.New("jwtsvid: at least one expected audience is required")
	}
	for _, a := range audience {
		if a == "" {
			return nil, errors.New("jwtsvid: expected audience cannot be empty")
		}
	}
	if bundles == nil {
		return nil, errors.New("jwtsvid: bundle source is required")
	}
	return parse(token, audience, func(tok *jwt.JSONWebToken, td spiffeid.TrustDomain) (map[string]any, error) {
		hdr := tok.Headers[0]
		if hdr.KeyID == "" { // JWT rule 4, JWT step S3
			return nil, errors.New("jwtsvid: token header missing key id")
		}
		bundle, err := bundles.GetJWTBundleForTrustDomain(td) // JWT step S5
		if err != nil {
			return nil, &wrapError{msg: fmt.Sprintf("jwtsvid: no bundle found for trust domain %q", td), err: err}
		}
		if bundle == nil || bundle.TrustDomain() != td {
			return nil, fmt.Errorf("jwtsvid: no bundle found for trust domain %q", td)
		}
		key, ok := bundle.FindJWTAuthority(hdr.KeyID) // JWT step S6
		if !ok {
			return nil, fmt.Errorf("jwtsvid: no JWT authority %q found for trust domain %q", hdr.KeyID, td)
		}
		if err := checkKeyFitsAlg(jose.SignatureAlgorithm(hdr.Algorithm), key); err != nil {
			return nil, err
		}
		claims := make(map[string]any)
		if err := tok.Claims(key, &claims); err != nil { // JWT step S7
			return nil, fmt.Errorf("jwtsvid: unable to get claims from token: %w", err)
		}
		return claims, nil
	})
}

// ParseInsecure parses and validates a JWT-SVID token and returns the
// JWT-SVID. The JWT-SVID signature is not verified: use it only on a token
// from a trusted source, never to authenticate a peer.
//
// Apart from the signature, it checks what go-spiffe's ParseInsecure checks:
// the length bound, compact serialization, the alg allow-list and typ, that
// sub is a SPIFFE ID, that exp is present and not past, nbf and iat, and, only
// when audience is not empty, that aud contains one of audience. kid is not
// required.
func ParseInsecure(token string, audience []string) (*SVID, error) {
	return parse(token, audience, func(tok *jwt.JSONWebToken, _ spiffeid.TrustDomain) (map[string]any, error) {
		claims := make(map[string]any)
		if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
			return nil, fmt.Errorf("jwtsvid: unable to get claims from token: %w", err)
		}
		return claims, nil
	})
}

// claimsFunc returns the token's claims, verifying the signature or not.
type claimsFunc func(*jwt.JSONWebToken, spiffeid.TrustDomain) (map[string]any, error)

func parse(token string, audience []string, getClaims claimsFunc) (*SVID, error) {
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("jwtsvid: token is too long: %d bytes, the maximum is %d", len(token), MaxTokenLength)
	}
	// JWT steps S1, S2: compact serialization only (a JSON serialization does
	// not have three dot-separated parts), alg in the allow-list.
	tok, err := jwt.ParseSigned(token, jwtutil.Algorithms())
	if err != nil {
		return nil, &wrapError{msg: "jwtsvid: unable to parse JWT token", err: err}
	}
	if len(tok.Headers) != 1 {
		return nil, errors.New("jwtsvid: unable to parse JWT token")
	}
	// JWT rule 5: typ, when present, is exactly JWT or JOSE.
	if typ, ok := tok.Headers[0].ExtraHeaders[jose.HeaderType]; ok && typ != "JWT" && typ != "JOSE" {
		return nil, errors.New("jwtsvid: token header type not equal to either JWT or JOSE")
	}

	// JWT step S4: read sub and exp before trusting anything, to find the
	// trust domain whose keys may verify the token.
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return nil, fmt.Errorf("jwtsvid: unable to get claims from token: %w", err)
	}
	switch {
	case claims.Subject == "": // JWT rule 6
		return nil, errors.New("jwtsvid: token missing subject claim")
	case claims.Expiry == nil: // JWT rule 8
		return nil, errors.New("jwtsvid: token missing exp claim")
	}
	id, err := spiffeid.FromString(claims.Subject)
	if err != nil {
		return nil, fmt.Errorf("jwtsvid: token has an invalid subject claim: %w", err)
	}

	all, err := getClaims(tok, id.TrustDomain())
	if err != nil {
		return nil, err
	}

	// JWT step S8: exp, nbf, iat with go-jose's one-minute leeway; aud.
	err = claims.Validate(jwt.Expected{AnyAudience: audience, Time: time.Now()})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return nil, &wrapError{msg: "jwtsvid: token has expired", err: err}
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, &wrapError{msg: fmt.Sprintf("jwtsvid: expected audience in %q (audience=%q)", audience, []string(claims.Audience)), err: err}
	default:
		return nil, fmt.Errorf("jwtsvid: %w", err)
	}

	return &SVID{ // JWT step S9
		ID:       id,
		Audience: claims.Audience,
		Expiry:   claims.Expiry.Time().UTC(),
		Claims:   all,
		token:    token,
	}, nil
}

// wrapError keeps go-spiffe's exact message while still letting callers
// reach the cause with errors.Is and errors.As.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }
