package exchange

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/jwtutil"
)

// MaxTokenSize bounds a subject token, in bytes.
const MaxTokenSize = 16 << 10

// MaxSelectors bounds the selectors made of one token's claims; claims past
// it are left out, in the order of their names.
const MaxSelectors = 256

// errToken is wrapped by every reason a subject token is refused.
var errToken = errors.New("subject token refused")

func tokenErrorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errToken}, args...)...)
}

// registeredClaims are the claims of RFC 7519 §4.1, which make no claim
// selector: their meaning is checked, not matched.
var registeredClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// identity is what a verified token says of its subject.
type identity struct {
	issuer    string
	subject   string
	expiry    time.Time
	selectors []attest.Selector
}

// verify checks a subject token against the configured issuers (see the
// package documentation) and returns its identity. Its errors wrap errToken,
// or a context's error.
func (h *Handler) verify(ctx context.Context, token string) (identity, *issuer, error) {
	if len(token) > MaxTokenSize {
		return identity{}, nil, tokenErrorf("larger than %d bytes", MaxTokenSize)
	}
	// JWT rule 3's list: RS*, ES*, PS*. "none" and HMAC fail here.
	tok, err := jwt.ParseSigned(token, jwtutil.Algorithms())
	if err != nil {
		return identity{}, nil, tokenErrorf("%w", err)
	}
	if len(tok.Headers) != 1 {
		return identity{}, nil, tokenErrorf("not one signature")
	}
	hdr := tok.Headers[0]
	if hdr.KeyID == "" {
		return identity{}, nil, tokenErrorf("no key ID")
	}
	// The issuer is read before the signature is checked, only to choose
	// whose keys check it: an unconfigured one is refused without a fetch.
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return identity{}, nil, tokenErrorf("claims: %w", err)
	}
	is := h.issuers[unverified.Issuer]
	if is == nil {
		return identity{}, nil, tokenErrorf("issuer %q is not trusted", truncate(unverified.Issuer))
	}
	key, err := is.key(ctx, hdr.KeyID)
	if err != nil {
		if ctx.Err() != nil {
			return identity{}, is, ctx.Err()
		}
		return identity{}, is, tokenErrorf("issuer %s: %w", is.cfg.URL, err)
	}
	if err := jwtutil.CheckKeyFitsAlg(jose.SignatureAlgorithm(hdr.Algorithm), key, "issuer key"); err != nil {
		return identity{}, is, tokenErrorf("issuer %s: %w", is.cfg.URL, err)
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(key, &std, &all); err != nil {
		return identity{}, is, tokenErrorf("issuer %s: %w", is.cfg.URL, err)
	}
	id, err := h.checkClaims(is, &std, all)
	return id, is, err
}

// checkClaims checks the verified claims and makes the selectors.
func (h *Handler) checkClaims(is *issuer, std *jwt.Claims, all map[string]any) (identity, error) {
	now := h.now()
	switch {
	case std.Issuer != is.cfg.URL:
		return identity{}, tokenErrorf("issuer %q is not %q", truncate(std.Issuer), is.cfg.URL)
	case std.Subject == "":
		return identity{}, tokenErrorf("no subject")
	case !std.Audience.Contains(is.cfg.Audience):
		return identity{}, tokenErrorf("audience %q does not hold %q", truncate(strings.Join(std.Audience, ",")), is.cfg.Audience)
	case std.Expiry == nil:
		return identity{}, tokenErrorf("no expiry")
	case !now.Before(std.Expiry.Time().Add(h.skew)):
		return identity{}, tokenErrorf("expired at %s", std.Expiry.Time().UTC().Format(time.RFC3339))
	case std.NotBefore != nil && now.Add(h.skew).Before(std.NotBefore.Time()):
		return identity{}, tokenErrorf("not valid before %s", std.NotBefore.Time().UTC().Format(time.RFC3339))
	case std.IssuedAt != nil && now.Add(h.skew).Before(std.IssuedAt.Time()):
		return identity{}, tokenErrorf("issued in the future, at %s", std.IssuedAt.Time().UTC().Format(time.RFC3339))
	}
	sels, err := Selectors(is.cfg.URL, std.Subject, all)
	if err != nil {
		return identity{}, tokenErrorf("%w", err)
	}
	return identity{issuer: is.cfg.URL, subject: std.Subject, expiry: std.Expiry.Time(), selectors: sels}, nil
}

// Selectors returns the selectors that a verified token of issuer iss for
// subject sub, with claims, maps to:
//
//	oidc:<iss>:sub:<sub>
//	oidc:<iss>:claim:<name>:<value>
//
// one for each claim of claims whose value is a string, and one per element
// for a claim whose value is an array of strings. The registered claims of
// RFC 7519 (iss, sub, aud, exp, nbf, iat, jti), claims whose name holds ':'
// (the name would not end where a reader expects), and values that make an
// invalid selector (control characters, too long) are left out, as are
// claims past [MaxSelectors]. A subject that makes an invalid selector is an
// error. The result is sorted.
func Selectors(iss, sub string, claims map[string]any) ([]attest.Selector, error) {
	subSel := attest.Selector{Type: SelectorType, Value: iss + ":sub:" + sub}
	if err := subSel.Validate(); err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	out := []attest.Selector{subSel}
	names := make([]string, 0, len(claims))
	for name := range claims {
		if name != "" && !strings.Contains(name, ":") && !slices.Contains(registeredClaims, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	add := func(name, value string) {
		s := attest.Selector{Type: SelectorType, Value: iss + ":claim:" + name + ":" + value}
		if len(out) < MaxSelectors && s.Validate() == nil {
			out = append(out, s)
		}
	}
	for _, name := range names {
		switch v := claims[name].(type) {
		case string:
			add(name, v)
		case []any:
			for _, e := range v {
				if s, ok := e.(string); ok {
					add(name, s)
				}
			}
		}
	}
	slices.SortFunc(out, attest.Selector.Compare)
	return slices.Compact(out), nil
}

// truncate keeps attacker-sized text short in logs.
func truncate(s string) string {
	const max = 256
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
