package wpt

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
)

const (
	// TokenType is the "typ" header of every WPT (draft-ietf-wimse-wpt-02
	// §2): the media type application/wpt+jwt without its "application/"
	// prefix, as RFC 7515 §4.1.9 recommends.
	TokenType = "wpt+jwt"

	// Scheme is the HTTP authentication scheme that carries a WPT in the
	// Authorization header field.
	Scheme = "WPT"

	// WITHeader is the header field that carries the WIT-SVID
	// (draft-ietf-wimse-workload-creds-02 §5.1.1).
	WITHeader = "Workload-Identity-Token"

	// TxnTokenHeader is the header field of a transaction token, which a
	// WPT binds with its tth claim.
	TxnTokenHeader = "Txn-Token"

	// MaxTokenLength is the largest WPT, in bytes, that a Verifier parses.
	// Longer credentials are refused before any decoding. A WPT signed with
	// a 4096-bit RSA key and binding a few tokens is under 2 KiB.
	MaxTokenLength = 8 << 10

	// MaxIDLength is the longest jti a Verifier accepts, which bounds the
	// memory of its replay cache. Mint's jti has 22 characters.
	MaxIDLength = 256

	// MaxOtherTokens is the most oth entries a WPT may carry.
	MaxOtherTokens = 16

	// DefaultLifetime is the lifetime of a WPT when MintParams.Lifetime is
	// zero: the draft wants minutes or seconds.
	DefaultLifetime = time.Minute
)

// Claims are the claims of a verified WPT.
type Claims struct {
	// Audience is aud: the target URI, or the values the sender chose.
	Audience []string
	// Expiry is exp, in UTC.
	Expiry time.Time
	// IssuedAt is iat, in UTC, or zero when the WPT has none.
	IssuedAt time.Time
	// ID is jti.
	ID string
	// WITHash is wth: the hash of the WIT-SVID the WPT is bound to.
	WITHash string
	// TxnTokenHash is tth, or empty.
	TxnTokenHash string
	// OtherTokenHashes is oth, by lowercased header field name, or nil.
	OtherTokenHashes map[string]string
	// Method is htm, or empty.
	Method string
}

// claims is the wire form of Claims beyond the registered JWT claims.
type claims struct {
	WTH string            `json:"wth"`
	TTH *string           `json:"tth,omitempty"`
	OTH map[string]string `json:"oth,omitempty"`
	HTM *string           `json:"htm,omitempty"`
}

// Hash returns the value of a token hash claim (wth, tth, oth) for token:
// the base64url encoding, without padding, of the SHA-256 of its bytes.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// MintParams describes the request a WPT is minted for.
type MintParams struct {
	// Audience is aud: the request's target URI without query or fragment
	// (see [TargetURI]), or a value the recipient is configured to accept.
	// Required.
	Audience string

	// Method is the request's method, put in htm. Empty leaves htm out.
	Method string

	// TxnToken is the transaction token the request carries in its
	// Txn-Token field, bound by tth. Empty means none.
	TxnToken string

	// OtherTokens are further context tokens of the request, by header
	// field name, bound by oth: each value is hashed with its leading and
	// trailing spaces removed, under the name in lower case. At most
	// MaxOtherTokens.
	OtherTokens map[string]string

	// Lifetime is exp - iat. Zero means DefaultLifetime.
	Lifetime time.Duration

	// Now is the time of iat. Zero means time.Now().
	Now time.Time
}

// Mint returns a WPT for the request p describes, proving possession of the
// private key of svid's cnf claim and bound to svid (wth). svid must carry
// its private key, as a WIT-SVID from the Workload API does; the key must be
// the one svid.PublicKey names.
func Mint(svid *witsvid.SVID, p MintParams) (string, error) {
	if svid == nil {
		return "", errors.New("wpt: WIT-SVID is required")
	}
	signer, ok := svid.PrivateKey.(crypto.Signer)
	if !ok {
		return "", errors.New("wpt: WIT-SVID has no private key")
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if eq, ok := signer.Public().(equaler); !ok || !eq.Equal(svid.PublicKey) {
		return "", errors.New("wpt: private key does not match the WIT-SVID's cnf key")
	}
	alg := jose.SignatureAlgorithm(svid.KeyAlgorithm())
	if alg == "" {
		return "", errors.New("wpt: WIT-SVID has no cnf.jwk.alg")
	}
	js, err := newSigner(signer, alg)
	if err != nil {
		return "", err
	}
	token, err := mint(js, svid.Marshal(), &p)
	if err != nil {
		return "", err
	}
	return token, nil
}

// newSigner returns a JWS signer with the WPT header: alg and typ.
func newSigner(key crypto.Signer, alg jose.SignatureAlgorithm) (jose.Signer, error) {
	var k any
	switch key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		k = key
	default: // an HSM or KMS key: go-jose signs through crypto.Signer
		k = cryptosigner.Opaque(key)
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k}, (&jose.SignerOptions{}).WithType(TokenType))
	if err != nil {
		return nil, fmt.Errorf("wpt: cannot sign with %s: %w", alg, err)
	}
	return js, nil
}

// mint builds and signs the claims of p, bound to wit.
func mint(js jose.Signer, wit string, p *MintParams) (string, error) {
	if p.Audience == "" {
		return "", errors.New("wpt: audience is required")
	}
	if len(p.OtherTokens) > MaxOtherTokens {
		return "", fmt.Errorf("wpt: %d other tokens, the maximum is %d", len(p.OtherTokens), MaxOtherTokens)
	}
	lifetime := p.Lifetime
	switch {
	case lifetime == 0:
		lifetime = DefaultLifetime
	case lifetime < 0:
		return "", errors.New("wpt: lifetime must not be negative")
	}
	now := p.Now
	if now.IsZero() {
		now = time.Now()
	}
	// draft-ietf-wimse-wpt-02 §2: 128 bits of pseudorandom data make a
	// collision with another WPT's jti negligible.
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", fmt.Errorf("wpt: cannot generate jti: %w", err)
	}
	ext := claims{WTH: Hash(wit)}
	if p.TxnToken != "" {
		tth := Hash(p.TxnToken)
		ext.TTH = &tth
	}
	if len(p.OtherTokens) > 0 {
		ext.OTH = make(map[string]string, len(p.OtherTokens))
		for name, value := range p.OtherTokens {
			name = strings.ToLower(name)
			if _, dup := ext.OTH[name]; dup || name == "" {
				return "", fmt.Errorf("wpt: other token header name %q is empty or repeated", name)
			}
			ext.OTH[name] = Hash(trimSpaces(value))
		}
	}
	if p.Method != "" {
		ext.HTM = &p.Method
	}
	std := jwt.Claims{
		Audience: jwt.Audience{p.Audience},
		Expiry:   jwt.NewNumericDate(now.Add(lifetime)),
		IssuedAt: jwt.NewNumericDate(now),
		ID:       base64.RawURLEncoding.EncodeToString(jti[:]),
	}
	token, err := jwt.Signed(js).Claims(std).Claims(ext).Serialize()
	if err != nil {
		return "", fmt.Errorf("wpt: cannot sign: %w", err)
	}
	return token, nil
}

// trimSpaces removes leading and trailing spaces and horizontal tabs (the
// OWS of RFC 9110 §5.6.3), as oth's default rule asks.
func trimSpaces(s string) string {
	return strings.Trim(s, " \t")
}

// expectation is what a WPT must match beyond its signature.
type expectation struct {
	audiences     []string // aud must contain one
	method        string
	requireMethod bool
	wit           string // the WIT as presented
	txnToken      string // "" means the request has none
	hasTxnToken   bool
	otherTokens   func(name string) (value string, ok bool) // oth entry lookup
	mustCover     []string                                  // lowercased names that must be in oth
	now           time.Time
	leeway        time.Duration
	maxLifetime   time.Duration
}

// ErrInvalidProof is returned, wrapped, by [Verifier.Verify] and
// [Verifier.VerifyToken] when the WPT is missing, malformed, not signed by
// the WIT-SVID's cnf key, or not bound to this request, this WIT-SVID or
// this time.
var ErrInvalidProof = errors.New("invalid workload proof token")

func invalid(format string, args ...any) error {
	return fmt.Errorf("wpt: %w: %s", ErrInvalidProof, fmt.Sprintf(format, args...))
}

// verifyToken checks token's signature with pub under alg, the only
// algorithm it accepts, then its header and claims against want.
func verifyToken(token string, pub crypto.PublicKey, alg jose.SignatureAlgorithm, want *expectation) (*Claims, error) {
	if len(token) > MaxTokenLength {
		return nil, invalid("token is too long: %d bytes, the maximum is %d", len(token), MaxTokenLength)
	}
	// draft-ietf-wimse-wpt-02 §2: alg must string-equal cnf.jwk.alg. Giving
	// go-jose that one algorithm refuses "none", an HMAC keyed with the
	// public key, and any other algorithm before the signature is looked at.
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{alg})
	if err != nil {
		return nil, invalid("cannot parse token: %v", err)
	}
	if len(tok.Headers) != 1 {
		return nil, invalid("token must have one signature")
	}
	hdr := tok.Headers[0]
	if typ, _ := hdr.ExtraHeaders[jose.HeaderType].(string); !isTokenType(typ) {
		return nil, invalid("token header type must be %q, got %q", TokenType, typ)
	}
	var std jwt.Claims
	var ext claims
	if err := tok.Claims(pub, &std, &ext); err != nil {
		return nil, invalid("signature or claims: %v", err)
	}
	if err := checkClaims(&std, &ext, want); err != nil {
		return nil, err
	}
	c := &Claims{
		Audience:         []string(std.Audience),
		Expiry:           std.Expiry.Time().UTC(),
		ID:               std.ID,
		WITHash:          ext.WTH,
		OtherTokenHashes: ext.OTH,
	}
	if std.IssuedAt != nil {
		c.IssuedAt = std.IssuedAt.Time().UTC()
	}
	if ext.TTH != nil {
		c.TxnTokenHash = *ext.TTH
	}
	if ext.HTM != nil {
		c.Method = *ext.HTM
	}
	return c, nil
}

// isTokenType reports whether typ names application/wpt+jwt, with or
// without its prefix, in any case (RFC 7515 §4.1.9).
func isTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == TokenType || typ == "application/"+TokenType
}

func checkClaims(std *jwt.Claims, ext *claims, want *expectation) error {
	if std.Expiry == nil {
		return invalid("token missing exp claim")
	}
	exp := std.Expiry.Time()
	if !want.now.Before(exp.Add(want.leeway)) {
		return invalid("token has expired")
	}
	// An exp unreasonably far ahead SHOULD be refused: it would make the
	// proof a long-lived credential and outlast the replay cache's memory.
	if exp.Sub(want.now) > want.maxLifetime+want.leeway {
		return invalid("token expires too far in the future")
	}
	if std.IssuedAt != nil {
		iat := std.IssuedAt.Time()
		if iat.After(want.now.Add(want.leeway)) {
			return invalid("token issued in the future")
		}
		if exp.Sub(iat) > want.maxLifetime {
			return invalid("token lifetime exceeds the maximum")
		}
	}
	if std.NotBefore != nil && std.NotBefore.Time().After(want.now.Add(want.leeway)) {
		return invalid("token is not yet valid")
	}
	if std.ID == "" {
		return invalid("token missing jti claim")
	}
	if len(std.ID) > MaxIDLength {
		return invalid("jti is longer than %d bytes", MaxIDLength)
	}
	if !audienceMatches(std.Audience, want.audiences) {
		return invalid("token audience does not name this request's target")
	}
	if ext.WTH == "" {
		return invalid("token missing wth claim")
	}
	if ext.WTH != Hash(want.wit) {
		return invalid("wth does not match the Workload-Identity-Token")
	}
	switch {
	case want.hasTxnToken && ext.TTH == nil:
		return invalid("request has a Txn-Token but the token has no tth claim")
	case want.hasTxnToken && *ext.TTH != Hash(want.txnToken):
		return invalid("tth does not match the Txn-Token")
	case !want.hasTxnToken && ext.TTH != nil:
		// A tth for a token that is not here binds nothing that the
		// recipient can check.
		return invalid("token has a tth claim but the request has no Txn-Token")
	}
	if err := checkOther(ext.OTH, want); err != nil {
		return err
	}
	if ext.HTM != nil && *ext.HTM != want.method {
		return invalid("htm %q does not match the request method", *ext.HTM)
	}
	if ext.HTM == nil && want.requireMethod {
		return invalid("token missing htm claim")
	}
	return nil
}

// checkOther checks oth: every entry must be understood (a header field
// present exactly once) and match, and every context token the recipient
// would use must be covered (draft-ietf-wimse-wpt-02 §2).
func checkOther(oth map[string]string, want *expectation) error {
	if len(oth) > MaxOtherTokens {
		return invalid("oth has %d entries, the maximum is %d", len(oth), MaxOtherTokens)
	}
	for name, hash := range oth {
		if name != strings.ToLower(name) {
			return invalid("oth names header %q not in lower case", name)
		}
		value, ok := "", false
		if want.otherTokens != nil {
			value, ok = want.otherTokens(name)
		}
		if !ok {
			return invalid("oth names header %q, which the request does not carry once", name)
		}
		if hash != Hash(trimSpaces(value)) {
			return invalid("oth does not match header %q", name)
		}
	}
	for _, name := range want.mustCover {
		if _, ok := oth[name]; !ok {
			return invalid("request carries %q, which oth does not cover", name)
		}
	}
	return nil
}

func audienceMatches(aud jwt.Audience, want []string) bool {
	for _, a := range aud {
		for _, w := range want {
			if a == w {
				return true
			}
		}
	}
	return false
}
