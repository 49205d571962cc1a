package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/internal/jwtutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// DefaultWITSVIDTTL is the lifetime of a WIT-SVID when WITSVIDParams.TTL is
// zero. WIT-SVIDs are bound to a key, so they live longer than bearer
// JWT-SVIDs (WIT rule 7).
const DefaultWITSVIDTTL = time.Hour

// witTokenType is the "typ" header of every WIT-SVID (WIT rule 2).
const witTokenType = "wit+jwt"

// WITAuthorityConfig describes one WIT-SVID signing key for
// [NewWITAuthority]. Its fields mean what they mean in [JWTAuthorityConfig]:
// Signer (ECDSA P-256 or P-384, or RSA of at least 2048 bits), KeyID (the
// "kid", WIT rule 1; published with use "wit-svid" in the bundle, and unique
// across it, WIT rule 16), Algorithm, NotAfter, TrustDomain and Now.
type WITAuthorityConfig JWTAuthorityConfig

// WITAuthority signs WIT-SVIDs (Workload Identity Tokens) with one key. It is
// immutable and safe for concurrent use; build one per key and replace it
// whole to rotate. Use a key of its own, not the key of a [JWTAuthority].
type WITAuthority struct {
	jwt JWTAuthority // with the WIT header
}

// NewWITAuthority validates cfg and returns an authority signing with
// cfg.Signer. It fails as [NewJWTAuthority] does.
func NewWITAuthority(cfg WITAuthorityConfig) (*WITAuthority, error) {
	a, err := NewJWTAuthority(JWTAuthorityConfig(cfg))
	if err != nil {
		return nil, err
	}
	// WIT rules 1-4: exactly alg, kid and typ "wit+jwt".
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{a.alg, a.kid, witTokenType})
	if err != nil {
		return nil, fmt.Errorf("ca: cannot encode WIT header: %w", err)
	}
	w := &WITAuthority{jwt: *a}
	w.jwt.header = base64.RawURLEncoding.EncodeToString(header) + "."
	return w, nil
}

// KeyID returns the key ID the authority puts in token headers.
func (w *WITAuthority) KeyID() string { return w.jwt.kid }

// PublicKey returns the public key that verifies the authority's tokens, to
// be published in the WIT bundle under [WITAuthority.KeyID].
func (w *WITAuthority) PublicKey() crypto.PublicKey { return w.jwt.signer.Public() }

// Algorithm returns the JWS algorithm of the authority's tokens.
func (w *WITAuthority) Algorithm() string { return w.jwt.alg }

// ErrInvalidWorkloadKey is wrapped by the error of
// [WITAuthority.SignWITSVID] when WITSVIDParams.PublicKey or KeyAlgorithm
// cannot be bound by "cnf" (WIT rule 6): a key type, size or curve, or an
// algorithm, the standard does not allow, or an algorithm that does not
// fit the key. Callers that received the key from a peer tell it so.
var ErrInvalidWorkloadKey = errors.New("ca: invalid workload key")

// WITSVIDParams describes a WIT-SVID for [WITAuthority.SignWITSVID].
type WITSVIDParams struct {
	// ID is the SPIFFE ID put in "sub" (WIT rule 5). Required, with the rules
	// of JWTSVIDParams.ID.
	ID spiffeid.ID

	// PublicKey is the workload's public key, bound to ID by the "cnf" claim
	// (WIT rule 6): ECDSA on P-256, P-384 or P-521, or RSA of 2048 to 8192
	// bits. Required. The workload proves possession of its private key
	// whenever it presents the token.
	PublicKey crypto.PublicKey

	// KeyAlgorithm is "cnf.jwk.alg", the algorithm of the workload's proofs
	// of possession; it must fit PublicKey. Empty means ES256, ES384 or
	// ES512 by curve for ECDSA, RS256 for RSA.
	KeyAlgorithm string

	// TTL is the requested lifetime. Zero means DefaultWITSVIDTTL. "exp" is
	// capped at the key's own expiry (WITAuthorityConfig.NotAfter).
	TTL time.Duration
}

// SignWITSVID mints a WIT-SVID (WIT rule 13): a compact JWS whose header
// holds exactly alg, kid and typ "wit+jwt", and whose claims are sub, exp,
// iat, a random jti and cnf.jwk, the workload's public key as a JWK with its
// alg. There is never an aud claim (WIT rule 12). It returns the serialized
// token.
//
// ctx is checked before signing; a signature under way is not interrupted.
func (w *WITAuthority) SignWITSVID(ctx context.Context, params WITSVIDParams) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("ca: %w", err)
	}
	token, err := w.signWITSVID(&params)
	if err != nil {
		return "", fmt.Errorf("ca: cannot sign WIT-SVID: %w", err)
	}
	return token, nil
}

func (w *WITAuthority) signWITSVID(p *WITSVIDParams) (string, error) {
	if err := validateSVIDID(p.ID, w.jwt.td, false); err != nil {
		return "", err
	}
	cnf, err := confirmationKey(p.PublicKey, p.KeyAlgorithm)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidWorkloadKey, err)
	}
	iat, exp, err := w.jwt.lifetime(p.TTL, DefaultWITSVIDTTL)
	if err != nil {
		return "", err
	}
	// WIT rule 10: jti is unique within the trust domain; 128 random bits
	// make a collision negligible.
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("cannot generate jti: %w", err)
	}
	type confirmation struct {
		JWK json.RawMessage `json:"jwk"`
	}
	claims, err := json.Marshal(struct {
		Sub string       `json:"sub"`
		Exp int64        `json:"exp"`
		Iat int64        `json:"iat"`
		Jti string       `json:"jti"`
		Cnf confirmation `json:"cnf"`
	}{p.ID.String(), exp, iat, base64.RawURLEncoding.EncodeToString(jti[:]), confirmation{cnf}})
	if err != nil {
		return "", fmt.Errorf("cannot encode claims: %w", err)
	}
	return w.jwt.sign(claims)
}

// confirmationKey returns pub as the JWK of the cnf claim, with its alg (WIT
// rule 6): an allowed algorithm that fits the key, never private members.
func confirmationKey(pub crypto.PublicKey, alg string) (json.RawMessage, error) {
	if _, err := checkPublicKey(pub); err != nil {
		return nil, fmt.Errorf("workload key: %w", err)
	}
	if alg == "" {
		switch k := pub.(type) {
		case *ecdsa.PublicKey:
			switch k.Curve {
			case elliptic.P256():
				alg = string(jose.ES256)
			case elliptic.P384():
				alg = string(jose.ES384)
			default:
				alg = string(jose.ES512)
			}
		case *rsa.PublicKey:
			alg = string(jose.RS256)
		default:
			return nil, fmt.Errorf("workload key: %T has no allowed algorithm", pub)
		}
	}
	if !jwtutil.Allowed(alg) {
		return nil, fmt.Errorf("workload key algorithm %q is not allowed", alg)
	}
	if err := jwtutil.CheckKeyFitsAlg(jose.SignatureAlgorithm(alg), pub, "workload key"); err != nil {
		return nil, err
	}
	b, err := jose.JSONWebKey{Key: pub, Algorithm: alg}.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("cannot encode workload key: %w", err)
	}
	return b, nil
}
