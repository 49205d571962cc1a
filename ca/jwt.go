package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// JWT signature algorithms accepted in JWTAuthorityConfig.Algorithm.
const (
	ES256 = "ES256" // ECDSA P-256 with SHA-256
	ES384 = "ES384" // ECDSA P-384 with SHA-384
	RS256 = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256
	PS256 = "PS256" // RSASSA-PSS with SHA-256
)

const (
	// DefaultJWTSVIDTTL is the lifetime of a JWT-SVID when JWTSVIDParams.TTL is zero.
	DefaultJWTSVIDTTL = 5 * time.Minute

	// maxAudiences bounds the audience list of one JWT-SVID.
	maxAudiences = 64

	// maxKeyIDBytes bounds the key ID put in every token header.
	maxKeyIDBytes = 256

	// maxIssuerBytes bounds the "iss" claim of a JWT-SVID.
	maxIssuerBytes = 2048
)

// JWTAuthorityConfig describes one JWT-SVID signing key for [NewJWTAuthority].
type JWTAuthorityConfig struct {
	// Signer holds the private key: ECDSA P-256 or P-384, or RSA of at least
	// 2048 bits. Required; it must be safe for concurrent use.
	Signer crypto.Signer

	// KeyID is the "kid" put in every token header and published with the
	// public key in the trust domain's bundle (JWT rule 4). Empty means
	// [KeyID] of the signer's public key. At most 256 bytes.
	KeyID string

	// Algorithm is the JWS algorithm: ES256 for P-256, ES384 for P-384,
	// RS256 or PS256 for RSA. Empty means ES256, ES384 or RS256 by key type.
	// A value that does not fit the key is an error.
	Algorithm string

	// NotAfter is when the key itself expires (e.g. when it leaves the
	// bundle); no token outlives it. The zero value means no limit.
	NotAfter time.Time

	// TrustDomain, when set, is the only trust domain the authority signs
	// for. The zero value allows any.
	TrustDomain spiffeid.TrustDomain

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// JWTAuthority signs JWT-SVIDs with one key. It is immutable and safe for
// concurrent use; build one per key and replace it whole to rotate.
type JWTAuthority struct {
	signer   crypto.Signer
	kid      string
	alg      string
	opts     crypto.SignerOpts
	ecSize   int    // bytes per ECDSA scalar; 0 for RSA
	header   string // base64url(header) + "."
	notAfter time.Time
	td       spiffeid.TrustDomain
	now      func() time.Time
}

// NewJWTAuthority validates cfg and returns an authority signing with
// cfg.Signer. It fails when the signer is missing or of an unsupported key
// type, when the algorithm does not fit the key, or when the key ID is too long.
func NewJWTAuthority(cfg JWTAuthorityConfig) (*JWTAuthority, error) {
	if cfg.Signer == nil {
		return nil, errors.New("ca: signer is missing")
	}
	if !cfg.TrustDomain.IsZero() {
		if err := validateTrustDomain(cfg.TrustDomain); err != nil {
			return nil, fmt.Errorf("ca: %w", err)
		}
	}
	a := &JWTAuthority{
		signer:   cfg.Signer,
		kid:      cfg.KeyID,
		alg:      cfg.Algorithm,
		notAfter: cfg.NotAfter,
		td:       cfg.TrustDomain,
		now:      cfg.Now,
	}
	if a.now == nil {
		a.now = time.Now
	}
	// JWT rule 3: only allow-listed algorithms, and only with a key of the
	// matching type and size.
	switch pub := cfg.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		var want string
		switch pub.Curve {
		case elliptic.P256():
			want, a.opts, a.ecSize = ES256, crypto.SHA256, 32
		case elliptic.P384():
			want, a.opts, a.ecSize = ES384, crypto.SHA384, 48
		default:
			return nil, errors.New("ca: unsupported ECDSA curve for JWT-SVIDs")
		}
		if a.alg == "" {
			a.alg = want
		}
		if a.alg != want {
			return nil, fmt.Errorf("ca: algorithm %q does not fit a %s key", a.alg, pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if pub.N == nil || pub.N.BitLen() < minRSABits {
			return nil, fmt.Errorf("ca: RSA key must have at least %d bits", minRSABits)
		}
		switch a.alg {
		case "", RS256:
			a.alg, a.opts = RS256, crypto.SHA256
		case PS256:
			a.opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		default:
			return nil, fmt.Errorf("ca: algorithm %q does not fit an RSA key", a.alg)
		}
	default:
		return nil, fmt.Errorf("ca: unsupported key type %T for JWT-SVIDs", pub)
	}
	if a.kid == "" {
		kid, err := KeyID(cfg.Signer.Public())
		if err != nil {
			return nil, err
		}
		a.kid = kid
	}
	if len(a.kid) > maxKeyIDBytes {
		return nil, fmt.Errorf("ca: key ID is longer than %d bytes", maxKeyIDBytes)
	}
	// JWT rule 2 and section G: exactly alg, kid and typ, the same in every
	// token, so encode them once.
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{a.alg, a.kid, "JWT"})
	if err != nil {
		return nil, fmt.Errorf("ca: cannot encode JWT header: %w", err)
	}
	a.header = base64.RawURLEncoding.EncodeToString(header) + "."
	return a, nil
}

// KeyID returns the key ID the authority puts in token headers.
func (a *JWTAuthority) KeyID() string { return a.kid }

// PublicKey returns the public key that verifies the authority's tokens, to
// be published in the bundle under [JWTAuthority.KeyID].
func (a *JWTAuthority) PublicKey() crypto.PublicKey { return a.signer.Public() }

// Algorithm returns the JWS algorithm of the authority's tokens.
func (a *JWTAuthority) Algorithm() string { return a.alg }

// JWTSVIDParams describes a JWT-SVID for [JWTAuthority.SignJWTSVID].
type JWTSVIDParams struct {
	// ID is the SPIFFE ID put in "sub" (JWT rule 6). Required; at most 2048
	// bytes long (ID rule 17), with no empty DNS label in its trust domain
	// name (as for X509-SVIDs), and in the authority's trust domain if it has
	// one. An ID without a path is allowed, as the JWT-SVID standard sets no
	// rule on it.
	ID spiffeid.ID

	// Audience is put in "aud", always as an array (JWT rule 7). At least
	// one value is required, none may be empty, and there may be at most 64.
	Audience []string

	// TTL is the requested lifetime. Zero means DefaultJWTSVIDTTL. "exp" is
	// capped at the key's own expiry (JWTAuthorityConfig.NotAfter).
	TTL time.Duration

	// JTI, when true, adds a "jti" claim: 128 random bits, base64url
	// encoded (22 characters), different in every token (RFC 7519 section
	// 4.1.7), for relying parties that detect replays or require one. False
	// leaves it out, as the JWT-SVID standard does not define it.
	JTI bool

	// Issuer, when not empty, is put in an "iss" claim, for relying parties
	// that check the issuer, such as OpenID Connect clients (which compare
	// it with the issuer of an OIDC discovery document). Empty leaves it
	// out, as the JWT-SVID standard does not define it. At most 2048 bytes.
	Issuer string
}

// SignJWTSVID mints a JWT-SVID: a compact JWS whose header holds exactly
// alg, kid and typ "JWT", and whose claims are sub, aud, exp and iat (JWT
// rules 1-8), and iss and jti when params.Issuer and params.JTI are set. It returns the serialized
// token.
//
// ctx is checked before signing; a signature under way is not interrupted.
func (a *JWTAuthority) SignJWTSVID(ctx context.Context, params JWTSVIDParams) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("ca: %w", err)
	}
	token, err := a.signJWTSVID(&params)
	if err != nil {
		return "", fmt.Errorf("ca: cannot sign JWT-SVID: %w", err)
	}
	return token, nil
}

func (a *JWTAuthority) signJWTSVID(p *JWTSVIDParams) (string, error) {
	if err := validateSVIDID(p.ID, a.td, false); err != nil {
		return "", err
	}
	switch {
	case len(p.Audience) == 0:
		return "", errors.New("audience is missing")
	case len(p.Audience) > maxAudiences:
		return "", fmt.Errorf("%d audiences, more than the %d allowed", len(p.Audience), maxAudiences)
	}
	for _, aud := range p.Audience {
		if aud == "" {
			return "", errors.New("audience is empty")
		}
	}
	iat, expSec, err := a.lifetime(p.TTL, DefaultJWTSVIDTTL)
	if err != nil {
		return "", err
	}
	if len(p.Issuer) > maxIssuerBytes {
		return "", fmt.Errorf("issuer is longer than %d bytes", maxIssuerBytes)
	}
	var jti string
	if p.JTI {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("cannot generate jti: %w", err)
		}
		jti = base64.RawURLEncoding.EncodeToString(b[:])
	}
	claims, err := json.Marshal(struct {
		Iss string   `json:"iss,omitempty"`
		Sub string   `json:"sub"`
		Aud []string `json:"aud"`
		Exp int64    `json:"exp"`
		Iat int64    `json:"iat"`
		Jti string   `json:"jti,omitempty"`
	}{p.Issuer, p.ID.String(), p.Audience, expSec, iat, jti})
	if err != nil {
		return "", fmt.Errorf("cannot encode claims: %w", err)
	}
	return a.sign(claims)
}

// lifetime returns iat and exp, in NumericDate seconds, of a token minted
// now with the requested ttl (def when zero), exp capped at the key's expiry.
func (a *JWTAuthority) lifetime(ttl, def time.Duration) (iat, exp int64, err error) {
	ttl, err = validateTTL(ttl, def)
	if err != nil {
		return 0, 0, err
	}
	now := a.now()
	end := now.Add(ttl)
	if !a.notAfter.IsZero() && end.After(a.notAfter) {
		end = a.notAfter
	}
	// NumericDate is whole seconds here; rounding exp down keeps it within
	// the key's expiry.
	iat, exp = now.Unix(), end.Unix()
	if exp <= iat {
		return 0, 0, fmt.Errorf("signing key expired at %s", a.notAfter.UTC().Format(time.RFC3339))
	}
	return iat, exp, nil
}

// sign returns the compact JWS of the encoded claims under the authority's
// header.
func (a *JWTAuthority) sign(claims []byte) (string, error) {
	enc := base64.RawURLEncoding
	signed := make([]byte, 0, len(a.header)+enc.EncodedLen(len(claims))+1+enc.EncodedLen(2*512))
	signed = append(signed, a.header...)
	signed = enc.AppendEncode(signed, claims)

	h := a.opts.HashFunc().New()
	h.Write(signed)
	sig, err := a.signer.Sign(rand.Reader, h.Sum(nil), a.opts)
	if err != nil {
		return "", fmt.Errorf("signer failed: %w", err)
	}
	if a.ecSize > 0 {
		// RFC 7518 section 3.4: ECDSA signatures are R || S, each padded to
		// the curve size, not the ASN.1 form crypto.Signer returns.
		if sig, err = ecdsaRawSignature(sig, a.ecSize); err != nil {
			return "", err
		}
	}
	signed = append(signed, '.')
	signed = enc.AppendEncode(signed, sig)
	return string(signed), nil
}

// ecdsaRawSignature converts an ASN.1 ECDSA signature to the fixed-size R || S
// form of JWS.
func ecdsaRawSignature(der []byte, size int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 {
		return nil, errors.New("signer returned a malformed ECDSA signature")
	}
	if sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 8*size || sig.S.BitLen() > 8*size {
		return nil, errors.New("signer returned an out-of-range ECDSA signature")
	}
	out := make([]byte, 2*size)
	sig.R.FillBytes(out[:size])
	sig.S.FillBytes(out[size:])
	return out, nil
}

// KeyID derives a key ID from a public key, for keys that have none: the
// unpadded base64url encoding of the first 20 bytes of the SHA-256 hash of the
// key's DER SubjectPublicKeyInfo (27 characters). Equal keys get equal IDs.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("ca: cannot derive key ID: %w", err)
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:20]), nil
}
