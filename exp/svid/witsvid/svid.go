package witsvid

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/jwkutil"
	"github.com/spiffekit/spiffekit/internal/jwtutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxTokenLength is the largest token, in bytes, that [ParseAndValidate] and
// [ParseInsecure] accept. Longer input is rejected before any decoding, so an
// unauthenticated peer cannot make the parser decode large headers or claims.
// A WIT-SVID with a 4096-bit RSA cnf key is under 3 KiB.
const MaxTokenLength = 16 << 10

// TokenType is the value of the "typ" header of every WIT-SVID (WIT rule 2).
const TokenType = "wit+jwt"

// SVID represents a WIT-SVID.
type SVID struct {
	// ID is the SPIFFE ID of the WIT-SVID as present in the 'sub' claim.
	ID spiffeid.ID

	// Expiry is the expiration time of the WIT-SVID as present in the 'exp'
	// claim, in UTC.
	Expiry time.Time

	// PublicKey is the public key bound to the WIT-SVID via the cnf.jwk
	// claim.
	PublicKey crypto.PublicKey

	// KeyID is the key ID from the JOSE header: the ID of the WIT authority
	// that signed the token.
	KeyID string

	// PrivateKey is the private key corresponding to PublicKey. It is
	// populated when the WIT-SVID is fetched from the Workload API, and nil
	// otherwise.
	PrivateKey crypto.PrivateKey

	// Hint is an operator-specified string used to provide guidance on how
	// this identity should be used by a workload when more than one SVID is
	// returned.
	Hint string

	// token is the serialized token, as parsed.
	token string
	// keyAlg is cnf.jwk.alg, the algorithm of proofs of possession.
	keyAlg jose.SignatureAlgorithm
}

// Marshal returns the WIT-SVID as a JWS compact serialization string: the
// same token value originally passed to [ParseAndValidate] or
// [ParseInsecure].
func (s *SVID) Marshal() string {
	return s.token
}

// KeyAlgorithm returns cnf.jwk.alg, the JWS algorithm that proofs of
// possession of PublicKey use (WIT rule 6), such as "ES256". It is empty for
// an SVID not built by [ParseAndValidate] or [ParseInsecure].
func (s *SVID) KeyAlgorithm() string {
	return string(s.keyAlg)
}

// ParseAndValidate parses and validates a WIT-SVID token, verifying its
// signature using the provided WIT bundle source.
//
// The token must be at most [MaxTokenLength] bytes in JWS compact
// serialization. alg must be one of RS256, RS384, RS512, ES256, ES384, ES512,
// PS256, PS384, PS512 and is checked before anything else (WIT rule 3); typ
// must be exactly "wit+jwt" (WIT rule 2) and kid must be present (WIT rule 1).
// sub must be a SPIFFE ID (WIT rule 5), exp must be present and not past,
// nbf and iat must not be in the future, all with a leeway of one minute (WIT
// rules 7-9); aud must not be present at all (WIT rule 12). cnf.jwk must be a
// public key with an allowed alg that fits it (WIT rule 6). The signing key
// is looked up by kid in the WIT bundle of the sub's trust domain only, and
// must fit alg: an RSA key of at least 2048 bits for RS* and PS*, an ECDSA
// key on P-256, P-384 or P-521 for ES256, ES384 or ES512.
//
// Rejecting a future iat matches go-spiffe; it is stricter than WIT rule 9.
//
// ParseAndValidate does not check a proof of possession. A WIT-SVID is not a
// bearer token: the caller MUST NOT accept it until the presenter has proved
// possession of the private key of [SVID.PublicKey] (WIT rule 15), through
// the presentation protocol in use or with [SVID.VerifyProofOfPossession].
func ParseAndValidate(token string, bundles witbundle.Source) (*SVID, error) {
	if bundles == nil {
		return nil, errors.New("witsvid: bundle source is required")
	}
	return parse(token, func(tok *jwt.JSONWebToken, td spiffeid.TrustDomain) error {
		hdr := tok.Headers[0]
		bundle, err := bundles.GetWITBundleForTrustDomain(td)
		if err != nil {
			return &wrapError{msg: fmt.Sprintf("witsvid: no WIT bundle found for trust domain %q", td), err: err}
		}
		// Only the sub's own trust domain may vouch for it, whatever a
		// misbehaving source returns.
		if bundle == nil || bundle.TrustDomain() != td {
			return fmt.Errorf("witsvid: no WIT bundle found for trust domain %q", td)
		}
		key, ok := bundle.FindWITAuthority(hdr.KeyID)
		if !ok {
			return fmt.Errorf("witsvid: no WIT authority %q found for trust domain %q", hdr.KeyID, td)
		}
		if err := jwtutil.CheckKeyFitsAlg(jose.SignatureAlgorithm(hdr.Algorithm), key, "WIT authority"); err != nil {
			return fmt.Errorf("witsvid: %w", err)
		}
		var claims map[string]json.RawMessage
		if err := tok.Claims(key, &claims); err != nil {
			return fmt.Errorf("witsvid: signature verification failed: %w", err)
		}
		return nil
	})
}

// ParseInsecure parses a WIT-SVID token without verifying its signature. Use
// it only on a token received from a trusted source (e.g., the Workload API),
// never to authenticate a peer. Apart from the signature and the bundle, it
// checks everything [ParseAndValidate] checks, including the expiry.
func ParseInsecure(token string) (*SVID, error) {
	return parse(token, func(*jwt.JSONWebToken, spiffeid.TrustDomain) error {
		return nil
	})
}

// verifyFunc verifies the token's signature, or not.
type verifyFunc func(*jwt.JSONWebToken, spiffeid.TrustDomain) error

func parse(token string, verify verifyFunc) (*SVID, error) {
	if len(token) > MaxTokenLength {
		return nil, fmt.Errorf("witsvid: token is too long: %d bytes, the maximum is %d", len(token), MaxTokenLength)
	}
	// WIT rule 3: compact serialization with an allowed alg, checked by
	// go-jose before anything else.
	tok, err := jwt.ParseSigned(token, jwtutil.Algorithms())
	if err != nil {
		return nil, &wrapError{msg: "witsvid: unable to parse WIT-SVID token", err: err}
	}
	if len(tok.Headers) != 1 {
		return nil, errors.New("witsvid: unable to parse WIT-SVID token")
	}
	hdr := tok.Headers[0]
	// WIT rule 2: typ is exactly "wit+jwt", so that neither a JWT-SVID nor
	// any other JWT passes for a WIT-SVID.
	if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); typ != TokenType {
		return nil, fmt.Errorf("witsvid: token header type must be %q, got %q", TokenType, typ)
	}
	if hdr.KeyID == "" { // WIT rule 1
		return nil, errors.New("witsvid: token header missing key id")
	}

	// Read the claims before trusting them, to find the trust domain whose
	// keys may verify the token.
	var claims jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&claims); err != nil {
		return nil, fmt.Errorf("witsvid: unable to parse standard claims: %w", err)
	}
	var raw map[string]json.RawMessage
	if err := tok.UnsafeClaimsWithoutVerification(&raw); err != nil {
		return nil, fmt.Errorf("witsvid: unable to parse claims: %w", err)
	}
	switch {
	case claims.Subject == "": // WIT rule 5
		return nil, errors.New("witsvid: token missing subject claim")
	case claims.Expiry == nil: // WIT rule 7
		return nil, errors.New("witsvid: token missing exp claim")
	}
	// WIT rule 12: aud MUST NOT be present, so a WIT-SVID is never taken for
	// an audience-restricted bearer token. Presence is what counts: go-spiffe
	// lets an empty or null aud through.
	if _, ok := raw["aud"]; ok || len(claims.Audience) > 0 {
		return nil, errors.New("witsvid: WIT-SVID must not contain aud claim")
	}
	id, err := spiffeid.FromString(claims.Subject)
	if err != nil {
		return nil, fmt.Errorf("witsvid: token has an invalid subject claim: %w", err)
	}
	pub, keyAlg, err := parseConfirmation(raw)
	if err != nil {
		return nil, err
	}

	// WIT rules 7-9 with go-jose's one-minute leeway.
	err = claims.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, jwt.DefaultLeeway)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		return nil, &wrapError{msg: "witsvid: token has expired", err: err}
	case errors.Is(err, jwt.ErrNotValidYet):
		return nil, &wrapError{msg: "witsvid: token is not yet valid", err: err}
	default:
		return nil, fmt.Errorf("witsvid: %w", err)
	}

	if err := verify(tok, id.TrustDomain()); err != nil {
		return nil, err
	}
	return &SVID{
		ID:        id,
		Expiry:    claims.Expiry.Time().UTC(),
		PublicKey: pub,
		KeyID:     hdr.KeyID,
		token:     token,
		keyAlg:    keyAlg,
	}, nil
}

// parseConfirmation returns the public key of cnf.jwk and its alg (WIT rule
// 6). The JWK is decoded like a bundle key: members matched exactly, private
// members and "oct" keys rejected, only the key members given to go-jose.
func parseConfirmation(claims map[string]json.RawMessage) (crypto.PublicKey, jose.SignatureAlgorithm, error) {
	rawCnf, ok := claims["cnf"]
	if !ok {
		return nil, "", errors.New("witsvid: token missing cnf claim")
	}
	var cnf map[string]json.RawMessage
	if err := json.Unmarshal(rawCnf, &cnf); err != nil || cnf == nil {
		return nil, "", errors.New("witsvid: cnf claim is not an object")
	}
	rawJWK, ok := cnf["jwk"]
	if !ok {
		return nil, "", errors.New("witsvid: cnf claim missing jwk field")
	}
	var jwk map[string]json.RawMessage
	if err := json.Unmarshal(rawJWK, &jwk); err != nil || jwk == nil {
		return nil, "", errors.New("witsvid: cnf.jwk is not an object")
	}
	rawAlg, ok := jwk["alg"]
	if !ok {
		return nil, "", errors.New("witsvid: cnf.jwk missing alg field")
	}
	var alg string
	if err := json.Unmarshal(rawAlg, &alg); err != nil {
		return nil, "", errors.New("witsvid: cnf.jwk alg field is not a string")
	}
	if !jwtutil.Allowed(alg) {
		return nil, "", fmt.Errorf("witsvid: cnf.jwk alg %q is not supported", alg)
	}

	// A one-key JWK Set lets the bundle decoder apply its rules.
	doc := make([]byte, 0, len(rawJWK)+10)
	doc = append(doc, `{"keys":[`...)
	doc = append(doc, rawJWK...)
	doc = append(doc, "]}"...)
	set, err := jwkutil.Decode(doc)
	if err != nil {
		// A JWK with private members would hand the workload's private key
		// to every validator; it is never a valid confirmation key.
		return nil, "", fmt.Errorf("witsvid: cnf.jwk must be a public key: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, "", errors.New("witsvid: unable to parse cnf.jwk: missing or unknown key type")
	}
	pub, err := set.Keys[0].PublicKey()
	if err != nil {
		return nil, "", fmt.Errorf("witsvid: unable to parse cnf.jwk: %w", err)
	}
	if err := jwtutil.CheckKeyFitsAlg(jose.SignatureAlgorithm(alg), pub, "cnf.jwk key"); err != nil {
		return nil, "", fmt.Errorf("witsvid: %w", err)
	}
	return pub, jose.SignatureAlgorithm(alg), nil
}

// wrapError keeps go-spiffe's exact message while still letting callers
// reach the cause with errors.Is and errors.As.
type wrapError struct {
	msg string
	err error
}

func (e *wrapError) Error() string { return e.msg }
func (e *wrapError) Unwrap() error { return e.err }
