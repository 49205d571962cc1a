package wpt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	// DefaultMaxLifetime is Config.MaxLifetime when zero: the longest a
	// WPT may still be valid for when it is received.
	DefaultMaxLifetime = 5 * time.Minute

	// DefaultLeeway is Config.Leeway when zero: the clock skew allowed
	// between sender and recipient.
	DefaultLeeway = 30 * time.Second

	// DefaultReplayCacheSize is Config.ReplayCacheSize when zero.
	DefaultReplayCacheSize = 100_000
)

// ErrInvalidWIT is returned, wrapped, by [Verifier.Verify] and
// [Verifier.VerifyToken] when the Workload-Identity-Token is missing,
// repeated, or not a WIT-SVID that witsvid.ParseAndValidate accepts.
var ErrInvalidWIT = errors.New("invalid workload identity token")

// ErrUnauthorized is returned, wrapped, by [Verifier.Verify] and
// [Verifier.VerifyToken] when the proof is valid but Config.Authorize
// refuses the caller's SPIFFE ID.
var ErrUnauthorized = errors.New("workload not authorized")

// Config configures a [Verifier].
type Config struct {
	// Bundles holds the WIT bundles that authenticate WIT-SVIDs, such as a
	// workloadapi.WITSource or a witbundle.Set. A WIT-SVID is checked
	// against the bundle of its own trust domain only. Required.
	Bundles witbundle.Source

	// Origins are the scheme and authority under which this server is
	// reached, such as "https://api.example.org": a WPT's aud must be one
	// of them followed by the request's path. They come from configuration
	// because the Host field and X-Forwarded-Host are the sender's to
	// choose (draft-ietf-wimse-wpt-02 §3.1.7). At least one is required.
	Origins []string

	// Authorize, when not nil, decides whether the authenticated SPIFFE ID
	// may call; an error refuses the request (ErrUnauthorized). Nil admits
	// every ID whose WIT-SVID and proof verify.
	Authorize spiffeid.Matcher

	// MaxLifetime bounds how far ahead a WPT's exp may be when it arrives,
	// and exp - iat. Zero means DefaultMaxLifetime.
	MaxLifetime time.Duration

	// Leeway is the clock skew allowed on exp and iat. Zero means
	// DefaultLeeway; it must not be negative.
	Leeway time.Duration

	// RequireMethod, when true, refuses WPTs without the htm claim. A WPT
	// with htm is always checked against the request's method.
	RequireMethod bool

	// OtherTokenHeaders names the header fields that carry end-user or
	// authorization context tokens the application uses. When the request
	// has one, the WPT's oth claim must cover it: a token not covered must
	// not drive authorization (draft-ietf-wimse-wpt-02 §2). Txn-Token is
	// always covered, by tth.
	OtherTokenHeaders []string

	// ReplayCacheSize is the most proofs the replay cache remembers. Zero
	// means DefaultReplayCacheSize.
	ReplayCacheSize int

	// Logger receives refusals at debug level (never a token). Nil
	// discards them.
	Logger *slog.Logger

	// Now returns the current time for the WPT's time checks. Nil means
	// time.Now. The WIT-SVID's own exp is checked against the real clock.
	Now func() time.Time
}

// Verifier verifies the WIT-SVID and WPT of incoming requests. It is safe
// for concurrent use. Its replay cache lives as long as it does: use one
// Verifier for all the handlers of a server.
type Verifier struct {
	bundles       witbundle.Source
	origins       []string
	authorize     spiffeid.Matcher
	maxLifetime   time.Duration
	leeway        time.Duration
	requireMethod bool
	other         []string // canonical header names
	cache         *replayCache
	log           *slog.Logger
	now           func() time.Time
}

// NewVerifier returns a Verifier for cfg. It fails when Bundles or Origins
// is missing, an origin is not an http or https URL of a scheme and an
// authority only, or a duration or size is negative.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Bundles == nil {
		return nil, errors.New("wpt: Bundles is required")
	}
	if len(cfg.Origins) == 0 {
		return nil, errors.New("wpt: at least one origin is required")
	}
	v := &Verifier{
		bundles:       cfg.Bundles,
		authorize:     cfg.Authorize,
		maxLifetime:   cfg.MaxLifetime,
		leeway:        cfg.Leeway,
		requireMethod: cfg.RequireMethod,
		log:           cfg.Logger,
		now:           cfg.Now,
	}
	for _, o := range cfg.Origins {
		origin, err := normalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		v.origins = append(v.origins, origin)
	}
	for _, h := range cfg.OtherTokenHeaders {
		if h == "" {
			return nil, errors.New("wpt: empty header name in OtherTokenHeaders")
		}
		v.other = append(v.other, http.CanonicalHeaderKey(h))
	}
	switch {
	case v.maxLifetime < 0, v.leeway < 0, cfg.ReplayCacheSize < 0:
		return nil, errors.New("wpt: MaxLifetime, Leeway and ReplayCacheSize must not be negative")
	}
	if v.maxLifetime == 0 {
		v.maxLifetime = DefaultMaxLifetime
	}
	if v.leeway == 0 {
		v.leeway = DefaultLeeway
	}
	size := cfg.ReplayCacheSize
	if size == 0 {
		size = DefaultReplayCacheSize
	}
	v.cache = newReplayCache(size)
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// normalizeOrigin returns o as scheme://host[:port], lower case, without a
// default port.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", fmt.Errorf("wpt: origin %q: %w", o, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("wpt: origin %q must be an http or https URL with a host and nothing after it", o)
	}
	return origin(u), nil
}

// origin returns the scheme and authority of u in lower case, without the
// scheme's default port.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}

// TargetURI returns the target URI of a request to u as a WPT's aud names
// it: scheme and authority in lower case without a default port, then the
// escaped path ("/" when empty), without query or fragment.
func TargetURI(u *url.URL) string {
	return origin(u) + path(u)
}

func path(u *url.URL) string {
	if p := u.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

// Result is what a verified request proves.
type Result struct {
	// ID is the caller's SPIFFE ID, the sub of its WIT-SVID.
	ID spiffeid.ID
	// WIT is the caller's validated WIT-SVID.
	WIT *witsvid.SVID
	// Claims are the claims of the verified WPT.
	Claims *Claims
}

// Verify authenticates r: its WIT-SVID against the WIT bundles, and its WPT
// against the WIT-SVID's cnf key, r, and the replay cache, as the package
// documentation lists. Errors wrap [ErrInvalidWIT], [ErrInvalidProof],
// [ErrReplay], [ErrReplayCacheFull] or [ErrUnauthorized].
func (v *Verifier) Verify(r *http.Request) (*Result, error) {
	if r.URL == nil {
		return nil, invalid("request has no URL")
	}
	authz := r.Header.Values("Authorization")
	if len(authz) != 1 {
		return nil, invalid("request must have exactly one Authorization field, has %d", len(authz))
	}
	proof, err := credentials(authz[0])
	if err != nil {
		return nil, err
	}
	wits := r.Header.Values(WITHeader)
	if len(wits) != 1 {
		return nil, fmt.Errorf("wpt: %w: request must have exactly one %s field, has %d", ErrInvalidWIT, WITHeader, len(wits))
	}
	want := &expectation{
		method:        r.Method,
		requireMethod: v.requireMethod,
		wit:           wits[0],
		otherTokens: func(name string) (string, bool) {
			vals := r.Header.Values(name)
			if len(vals) != 1 {
				return "", false
			}
			return vals[0], true
		},
	}
	p := path(r.URL)
	want.audiences = make([]string, len(v.origins))
	for i, o := range v.origins {
		want.audiences[i] = o + p
	}
	switch txn := r.Header.Values(TxnTokenHeader); len(txn) {
	case 0:
	case 1:
		want.txnToken, want.hasTxnToken = txn[0], true
	default:
		return nil, invalid("request has %d Txn-Token fields", len(txn))
	}
	for _, h := range v.other {
		if len(r.Header.Values(h)) > 0 {
			want.mustCover = append(want.mustCover, strings.ToLower(h))
		}
	}
	return v.verify(wits[0], proof, want)
}

// Binding describes, for [Verifier.VerifyToken], what a WPT must be bound
// to outside of an *http.Request.
type Binding struct {
	// Audience is the value aud must hold: the target URI, or what the
	// protocol in use puts there. Required.
	Audience string
	// Method is what htm must be when the WPT has one.
	Method string
	// TxnToken is the transaction token that travels with the WPT, which
	// tth must bind; empty means none, and then the WPT must have no tth.
	TxnToken string
	// OtherTokens are the context tokens that travel with the WPT, by
	// header field name (any case); oth must bind every one of them, and
	// only them.
	OtherTokens map[string]string
}

// VerifyToken verifies wit, a WIT-SVID, and proof, a WPT, against b, for
// protocols that carry them otherwise than in an HTTP request's fields. It
// checks what [Verifier.Verify] checks and returns the same errors.
func (v *Verifier) VerifyToken(wit, proof string, b Binding) (*Result, error) {
	if b.Audience == "" {
		return nil, errors.New("wpt: binding has no audience")
	}
	other := make(map[string]string, len(b.OtherTokens))
	for name, value := range b.OtherTokens {
		other[strings.ToLower(name)] = value
	}
	want := &expectation{
		audiences:     []string{b.Audience},
		method:        b.Method,
		requireMethod: v.requireMethod,
		wit:           wit,
		txnToken:      b.TxnToken,
		hasTxnToken:   b.TxnToken != "",
		otherTokens: func(name string) (string, bool) {
			value, ok := other[name]
			return value, ok
		},
	}
	for name := range other {
		want.mustCover = append(want.mustCover, name)
	}
	return v.verify(wit, proof, want)
}

func (v *Verifier) verify(wit, proof string, want *expectation) (*Result, error) {
	// draft-ietf-wimse-wpt-02 §2: the WIT is validated first, and gives the
	// only key and algorithm the proof may use.
	svid, err := witsvid.ParseAndValidate(wit, v.bundles)
	if err != nil {
		return nil, fmt.Errorf("wpt: %w: %w", ErrInvalidWIT, err)
	}
	now := v.now()
	want.now, want.leeway, want.maxLifetime = now, v.leeway, v.maxLifetime
	claims, err := verifyToken(proof, svid.PublicKey, jose.SignatureAlgorithm(svid.KeyAlgorithm()), want)
	if err != nil {
		return nil, err
	}
	if v.authorize != nil {
		if err := v.authorize(svid.ID); err != nil {
			return nil, fmt.Errorf("wpt: %w: %w", ErrUnauthorized, err)
		}
	}
	// Only proofs that verified reach the cache, so that no one without a
	// WIT-SVID and its key can fill it. A jti is remembered per sender
	// (§3.1.4) for as long as its proof could be accepted.
	key := svid.ID.String() + "\x00" + claims.ID
	if err := v.cache.add(key, claims.Expiry.Add(v.leeway), now); err != nil {
		return nil, fmt.Errorf("wpt: %w", err)
	}
	return &Result{ID: svid.ID, WIT: svid, Claims: claims}, nil
}

// credentials returns the token68 of a WPT Authorization value:
// "WPT" 1*SP token68, the scheme in any case (RFC 9110 §11.1).
func credentials(value string) (string, error) {
	scheme, rest, ok := strings.Cut(value, " ")
	if !ok || !strings.EqualFold(scheme, Scheme) {
		return "", invalid("Authorization does not use the %s scheme", Scheme)
	}
	token := strings.TrimLeft(rest, " ")
	if !isToken68(token) {
		return "", invalid("%s credentials are not a token68", Scheme)
	}
	return token, nil
}

// isToken68 reports whether s matches token68 (RFC 9110 §11.2):
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

type resultKey struct{}

// FromContext returns the Result that [Verifier.Middleware] stored in the
// context of the request it passed on.
func FromContext(ctx context.Context) (*Result, bool) {
	res, ok := ctx.Value(resultKey{}).(*Result)
	return res, ok
}

// Middleware returns a handler that verifies each request with
// [Verifier.Verify] and passes those that verify to next, with the
// [Result] in their context ([FromContext]). It answers the others itself,
// with a fixed message and no detail: 401 with a "WWW-Authenticate: WPT"
// challenge for a missing, invalid or replayed WPT (draft-ietf-wimse-wpt-02
// §2.1), 400 for an invalid WIT-SVID (draft-ietf-wimse-workload-creds-02
// §5.2), 403 when Config.Authorize refuses, and 503 when the replay cache
// is full.
func (v *Verifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res, err := v.Verify(r)
		if err != nil {
			v.refuse(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), resultKey{}, res)))
	})
}

func (v *Verifier) refuse(w http.ResponseWriter, r *http.Request, err error) {
	v.log.LogAttrs(r.Context(), slog.LevelDebug, "request refused",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("err", err))
	switch {
	case errors.Is(err, ErrInvalidWIT):
		http.Error(w, "invalid workload identity token", http.StatusBadRequest)
	case errors.Is(err, ErrUnauthorized):
		http.Error(w, "forbidden", http.StatusForbidden)
	case errors.Is(err, ErrReplayCacheFull):
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
	default:
		w.Header().Set("WWW-Authenticate", Scheme)
		http.Error(w, "invalid workload proof token", http.StatusUnauthorized)
	}
}
