package exchange

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Protocol identifiers (RFC 8693 §3, §4).
const (
	// GrantType is the grant_type of a token exchange.
	GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeJWT is the token type of a JWT: the subject_token type this
	// endpoint reads, and the requested_token_type of a JWT-SVID.
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
	// TokenTypeIDToken is the token type of an OpenID Connect ID token,
	// accepted as a subject_token type as well: it is a JWT.
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	// TokenTypeX509SVID is the requested_token_type of an X509-SVID; the
	// issued token is its certificate chain as PEM, leaf first. RFC 8693
	// registers no type for X.509 certificates.
	TokenTypeX509SVID = "urn:spiffekit:params:oauth:token-type:x509-svid"
	// TokenTypeLaunchHandle is the subject_token_type of a one-time
	// launch handle, which a launcher obtained for the sandbox it starts
	// (see [HandleRedeemer]). It is accepted only when Config.Handles is
	// set.
	TokenTypeLaunchHandle = "urn:spiffekit:params:oauth:token-type:launch-handle"
)

// SelectorType is the type of the selectors made of a verified token's
// claims.
const SelectorType = "oidc"

// ParentPath is the path of [ParentID].
const ParentPath = registry.ReservedPath + "/exchange"

// ParentID returns the parent ID that a registration entry must have to be
// obtainable through token exchange: spiffe://<td>/spiffekit/exchange. It
// lies in the reserved namespace (registry.Reserved), where no agent lives,
// so that no agent is ever given these entries.
func ParentID(td spiffeid.TrustDomain) spiffeid.ID {
	id, err := spiffeid.FromPath(td, ParentPath)
	if err != nil {
		panic(err) // a constant path: only a zero trust domain gets here, which New refuses
	}
	return id
}

// Defaults of Config.
const (
	// DefaultClockSkew is the leeway given to exp, nbf and iat.
	DefaultClockSkew = 30 * time.Second
	// MaxClockSkew bounds Config.ClockSkew.
	MaxClockSkew = 5 * time.Minute
	// DefaultRate and DefaultBurst bound the exchanges verified per second.
	DefaultRate  = 200
	DefaultBurst = 400
	// DefaultSubjectRate and DefaultSubjectBurst bound the SVIDs one
	// subject of one issuer obtains per second.
	DefaultSubjectRate  = 1
	DefaultSubjectBurst = 10
	// DefaultMaxSubjects bounds the subjects whose bucket is kept.
	DefaultMaxSubjects = 10000
)

// MaxRequestSize bounds a request's body, in bytes.
const MaxRequestSize = 64 << 10

// ErrInvalidConfig is wrapped by the errors [New] returns for a Config it
// cannot honour.
var ErrInvalidConfig = errors.New("exchange: invalid configuration")

// Entries finds the registration entries that apply to a set of selectors:
// those whose selectors are all among them. *registry/index.Index is one.
type Entries interface {
	ForWorkload(selectors []attest.Selector) []registry.Entry
}

// A Minter signs SVIDs with the trust domain's CA. A zero ttl means the
// minter's default. Package server's admin minter is one.
type Minter interface {
	MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.PublicKey, dnsNames []string, ttl time.Duration) ([]*x509.Certificate, error)
	MintJWTSVID(ctx context.Context, id spiffeid.ID, audience []string, ttl time.Duration) (string, error)
}

// A HandleRedeemer redeems one-time launch handles (subject tokens of type
// [TokenTypeLaunchHandle]): Redeem consumes the handle, so that it is never
// accepted again, and returns the registration entry whose SVID its holder
// obtains. Once the handle is found genuine, and before it is consumed,
// Redeem calls check (when not nil) with the entry: an error it returns is
// returned as it is (or wrapped with %w), and the handle stays unspent, so
// that a request the endpoint would refuse anyway (a spiffe_id that is not
// the launch's) does not cost the sandbox its identity. Errors wrapping
// [ErrInvalidToken] refuse the handle (unknown, redeemed, expired, wrong);
// others are check's or the redeemer's failures. Package launch's Server
// is one.
type HandleRedeemer interface {
	Redeem(ctx context.Context, handle string, check func(registry.Entry) error) (registry.Entry, error)
}

// Issuer is an external token issuer that the endpoint trusts.
type Issuer struct {
	// URL is the issuer identifier: the "iss" its tokens carry, exactly,
	// and the base of its discovery document
	// (<URL>/.well-known/openid-configuration). An https URL without query
	// or fragment. Required.
	URL string

	// Audience is the value the "aud" of a token must hold, so that a
	// token the issuer made for another relying party is refused.
	// Required.
	Audience string

	// Client fetches the discovery document and the JWK Set. Nil means a
	// client with a 10 s timeout over http.DefaultTransport's settings.
	// Redirects are not followed.
	Client *http.Client
}

// Config configures [New].
type Config struct {
	// TrustDomain is the trust domain of the SVIDs. Required.
	TrustDomain spiffeid.TrustDomain

	// Issuers are the trusted issuers; tokens of any other are refused
	// before anything is fetched. Each URL once; at least one is required
	// unless Handles is set.
	Issuers []Issuer

	// Handles, when not nil, redeems launch handles (subject tokens of
	// type TokenTypeLaunchHandle) for the SVID of the entry each names.
	// Nil refuses them.
	Handles HandleRedeemer

	// Entries finds the entries that apply. Required.
	Entries Entries

	// Minter signs the SVIDs. Required.
	Minter Minter

	// ClockSkew is the leeway given to exp, nbf and iat. Zero means
	// DefaultClockSkew; at most MaxClockSkew.
	ClockSkew time.Duration

	// Rate and Burst bound the exchanges verified per second, whatever
	// their issuer. Zero means DefaultRate and DefaultBurst.
	Rate  rate.Limit
	Burst int

	// SubjectRate and SubjectBurst bound the SVIDs one subject of one
	// issuer obtains per second. Zero means DefaultSubjectRate and
	// DefaultSubjectBurst.
	SubjectRate  rate.Limit
	SubjectBurst int

	// MaxSubjects bounds how many subjects' buckets are kept; past it,
	// the full buckets are dropped. Zero means DefaultMaxSubjects.
	MaxSubjects int

	// Logger receives one line per exchange. Nil discards them.
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Handler is the token exchange endpoint, an http.Handler. It is safe for
// concurrent use and starts no goroutine: issuers' keys are fetched when a
// request needs them.
type Handler struct {
	td       spiffeid.TrustDomain
	parent   spiffeid.ID
	issuers  map[string]*issuer
	entries  Entries
	minter   Minter
	skew     time.Duration
	global   *rate.Limiter
	subjects *subjectLimiter
	handles  HandleRedeemer
	log      *slog.Logger
	now      func() time.Time
}

// CheckSettings checks what of c does not depend on its TrustDomain,
// Entries and Minter: the issuers (at least one unless Handles is set), the
// clock skew and the limits. [New]
// calls it; a program that fills those later calls it to find a mistake
// before it opens anything. Errors wrap [ErrInvalidConfig].
func (c Config) CheckSettings() error {
	switch {
	case len(c.Issuers) == 0 && c.Handles == nil:
		return fmt.Errorf("%w: no issuer", ErrInvalidConfig)
	case c.ClockSkew < 0 || c.ClockSkew > MaxClockSkew:
		return fmt.Errorf("%w: clock skew %v is not between 0 and %v", ErrInvalidConfig, c.ClockSkew, MaxClockSkew)
	case c.Rate < 0 || c.Burst < 0 || c.SubjectRate < 0 || c.SubjectBurst < 0 || c.MaxSubjects < 0:
		return fmt.Errorf("%w: negative rate limit", ErrInvalidConfig)
	}
	seen := make(map[string]bool, len(c.Issuers))
	for _, is := range c.Issuers {
		if err := checkIssuer(is); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if seen[is.URL] {
			return fmt.Errorf("%w: issuer %q configured twice", ErrInvalidConfig, is.URL)
		}
		seen[is.URL] = true
	}
	return nil
}

// New checks cfg and returns the endpoint's handler. It fetches nothing.
func New(cfg Config) (*Handler, error) {
	switch {
	case cfg.TrustDomain.IsZero():
		return nil, fmt.Errorf("%w: no trust domain", ErrInvalidConfig)
	case cfg.Entries == nil:
		return nil, fmt.Errorf("%w: no entries", ErrInvalidConfig)
	case cfg.Minter == nil:
		return nil, fmt.Errorf("%w: no minter", ErrInvalidConfig)
	}
	if err := cfg.CheckSettings(); err != nil {
		return nil, err
	}
	h := &Handler{
		td:      cfg.TrustDomain,
		parent:  ParentID(cfg.TrustDomain),
		issuers: make(map[string]*issuer, len(cfg.Issuers)),
		entries: cfg.Entries,
		minter:  cfg.Minter,
		handles: cfg.Handles,
		skew:    orDefault(cfg.ClockSkew, DefaultClockSkew),
		log:     cfg.Logger,
		now:     cfg.Now,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	for _, is := range cfg.Issuers {
		h.issuers[is.URL] = newIssuer(is, h.now)
	}
	h.global = rate.NewLimiter(orDefault(cfg.Rate, DefaultRate), orDefault(cfg.Burst, DefaultBurst))
	h.subjects = newSubjectLimiter(orDefault(cfg.SubjectRate, DefaultSubjectRate), orDefault(cfg.SubjectBurst, DefaultSubjectBurst),
		orDefault(cfg.MaxSubjects, DefaultMaxSubjects), h.now)
	return h, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// checkIssuer refuses an issuer whose identifier is not an https URL
// without query or fragment, or that holds ":sub:" or ":claim:", which would
// make its selectors read like another issuer's, or has no audience.
func checkIssuer(is Issuer) error {
	u, err := url.Parse(is.URL)
	switch {
	case err != nil:
		return fmt.Errorf("issuer %q: %w", is.URL, err)
	case u.Scheme != "https" || u.Host == "" || u.User != nil:
		return fmt.Errorf("issuer %q: not an https URL", is.URL)
	case u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(is.URL, "?#"):
		return fmt.Errorf("issuer %q: has a query or fragment", is.URL)
	case strings.Contains(is.URL, ":sub:") || strings.Contains(is.URL, ":claim:"):
		return fmt.Errorf("issuer %q: holds \":sub:\" or \":claim:\"", is.URL)
	case is.Audience == "":
		return fmt.Errorf("issuer %q: no audience", is.URL)
	}
	if err := (attest.Selector{Type: SelectorType, Value: is.URL + ":sub:x"}).Validate(); err != nil {
		return fmt.Errorf("issuer %q: %w", is.URL, err)
	}
	return nil
}
