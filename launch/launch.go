package launch

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// ParentPath is the path of [ParentID].
const ParentPath = registry.ReservedPath + "/launch"

// SelectorType is the type of the selector that holds a launch's state:
// handle:<SHA-256 of the handle's secret, hex> until it is redeemed, then
// redeemed:<the same digest>.
const SelectorType = "launch"

// Selector values' prefixes.
const (
	pendingPrefix  = "handle:"
	redeemedPrefix = "redeemed:"
)

// ParentID returns the parent ID of every launch's entry:
// spiffe://<td>/spiffekit/launch. It lies in the reserved namespace, where
// no agent lives, so that no agent is ever given these entries; and the
// token exchange's OIDC path only uses entries parented by
// exchange.ParentID, so that no token but the launch's handle obtains
// them.
func ParentID(td spiffeid.TrustDomain) spiffeid.ID {
	id, err := spiffeid.FromPath(td, ParentPath)
	if err != nil {
		panic(err) // a constant path: only a zero trust domain gets here, which New refuses
	}
	return id
}

// Lifetimes of launches and of their SVIDs.
const (
	// DefaultTTL is a launch's lifetime when Params.TTL is zero.
	DefaultTTL = 15 * time.Minute
	// MinTTL is the shortest launch.
	MinTTL = 10 * time.Second
	// MaxTTL is the longest launch, and the largest Config.MaxTTL.
	MaxTTL = 24 * time.Hour
	// DefaultX509SVIDTTL and DefaultJWTSVIDTTL are the SVID lifetimes
	// when Params leaves them zero, cut to the launch's TTL.
	DefaultX509SVIDTTL = time.Hour
	DefaultJWTSVIDTTL  = 5 * time.Minute
)

// Defaults of the rate limit on launches.
const (
	DefaultRate  = 50
	DefaultBurst = 100
)

// DefaultMaxLive is the most launches alive at once when Config.MaxLive is
// zero.
const DefaultMaxLive = 10000

// secretSize is the size of a handle's secret in bytes: 256 bits.
const secretSize = 32

// secretEncodedLen is the length of the secret in unpadded base64url.
const secretEncodedLen = (secretSize*8 + 5) / 6

// Errors callers branch on with errors.Is.
var (
	// ErrInvalidConfig is wrapped by the errors New returns for a Config
	// it cannot honour.
	ErrInvalidConfig = errors.New("launch: invalid configuration")
	// ErrInvalid is wrapped by the errors of Launch for Params it
	// refuses (it also wraps registry.ErrInvalid).
	ErrInvalid error = &invalidError{}
	// ErrNotFound is returned by End and Get for an ID that names no
	// launch (never did, ended, or expired and pruned).
	ErrNotFound = errors.New("launch: no such launch")
	// ErrRateLimited is returned by Launch when the rate limit refuses
	// it.
	ErrRateLimited = errors.New("launch: rate limited")
	// ErrTooManyLive is wrapped by the error of Launch when Config.MaxLive
	// launches are alive.
	ErrTooManyLive = errors.New("launch: too many live launches")
)

// invalidError is ErrInvalid: a registry.ErrInvalid whose message says
// "launch: invalid launch" alone, so that the reason after it is not
// preceded by the registry's words too.
type invalidError struct{}

func (*invalidError) Error() string { return "launch: invalid launch" }
func (*invalidError) Unwrap() error { return registry.ErrInvalid }

// Entries keeps the launches' registration entries. registry.Store is one.
type Entries interface {
	Get(ctx context.Context, id string) (registry.Entry, error)
	Create(ctx context.Context, e registry.Entry) (registry.Entry, error)
	Update(ctx context.Context, e registry.Entry) (registry.Entry, error)
	Delete(ctx context.Context, id string, revision int64) (registry.Entry, error)
}

// Config configures [New].
type Config struct {
	// TrustDomain is the trust domain of the launched identities.
	// Required.
	TrustDomain spiffeid.TrustDomain

	// Entries keeps the launches' entries: the server's entry store.
	// Required.
	Entries Entries

	// AllowedUIDs are the uids of the processes that may use the launcher
	// API (checked by SO_PEERCRED on every connection). Nil or empty means
	// root (0) and the process's own uid.
	AllowedUIDs []int

	// PathPrefixes, when not empty, are the SPIFFE ID paths launches may
	// take: a launched ID's path is one of them or below one ("/sandbox"
	// allows spiffe://<td>/sandbox and spiffe://<td>/sandbox/42, not
	// spiffe://<td>/sandboxes). Empty means any path outside the reserved
	// namespace, which makes a launcher as powerful as an administrator
	// for the identities it may launch: give the prefixes your sandboxes
	// use.
	PathPrefixes []string

	// DefaultTTL is the lifetime of a launch that names none. Zero means
	// [DefaultTTL]; between MinTTL and MaxTTL.
	DefaultTTL time.Duration

	// MaxTTL bounds the lifetime a launcher may ask for. Zero means
	// [MaxTTL]; between MinTTL and MaxTTL, and at least DefaultTTL.
	MaxTTL time.Duration

	// Rate and Burst bound the launches per second. Zero means
	// DefaultRate and DefaultBurst.
	Rate  rate.Limit
	Burst int

	// MaxLive bounds the launches alive at once: made, and neither
	// expired nor ended, redeemed or not. While MaxLive are, Launch
	// refuses another with an error wrapping ErrTooManyLive, so that a
	// launcher that never ends its launches cannot fill the store. Zero
	// means DefaultMaxLive.
	MaxLive int

	// Live, when not nil, returns how many launches are alive: the
	// entries parented by ParentID that have not expired. Package server
	// passes its entry index's count, which sees the launches of every
	// server sharing the store; as the index follows the store within
	// moments, the launches of those moments may pass MaxLive. It must be
	// safe for concurrent use and cheap: every launch calls it. Nil means
	// the Server counts them itself: the live launches the store held at
	// its first launch (when Entries is also a registry.Reader), and those
	// it made since, until they end or expire; the launches other servers
	// sharing the store make meanwhile are not counted.
	Live func() int

	// X509Authorities, when not nil, returns the trust domain's X.509
	// authorities as they are now, handed to the launcher with each launch
	// so that the sandbox can authenticate the token exchange endpoint
	// (when it presents the server's X509-SVID) and the peers it meets,
	// without another channel. It must be safe for concurrent use. Nil
	// hands none.
	X509Authorities func() []*x509.Certificate

	// JWTAuthorities, when not nil, returns the trust domain's JWT
	// authorities (the public keys that sign its JWT-SVIDs, by key ID) as
	// they are now, handed to the launcher with each launch so that the
	// sandbox can validate the JWT-SVIDs it is shown, without another
	// channel. The launcher API hands them as a JWK Set; a key it cannot
	// encode there fails the launch, which is then ended. It must be safe
	// for concurrent use. Nil hands none.
	JWTAuthorities func() map[string]crypto.PublicKey

	// WITAuthorities, when not nil, returns the trust domain's WIT
	// authorities (the public keys that sign its WIT-SVIDs, by key ID) as
	// they are now, handed with each launch as JWTAuthorities are, so
	// that the sandbox can validate the WIT-SVIDs it is shown (package
	// exp/svid/witsvid). It must be safe for concurrent use. Nil hands
	// none.
	WITAuthorities func() map[string]crypto.PublicKey

	// Logger receives one line per launch, end, redemption and refusal.
	// Nil discards them.
	Logger *slog.Logger

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Server makes and redeems launches: the launcher API ([Server.Serve] on
// a unix socket) and the [exchange.HandleRedeemer] of the token exchange.
// It is safe for concurrent use and starts no goroutine of its own.
type Server struct {
	td         spiffeid.TrustDomain
	parent     spiffeid.ID
	entries    Entries
	allowed    []int
	prefixes   []string // empty: any
	defaultTTL time.Duration
	maxTTL     time.Duration
	limit      *rate.Limiter
	maxLive    int
	roots      func() []*x509.Certificate
	jwtKeys    func() map[string]crypto.PublicKey
	witKeys    func() map[string]crypto.PublicKey
	log        *slog.Logger
	now        func() time.Time

	// live counts the live launches: Config.Live, or the Server's own
	// count.
	live liveCounter
}

var _ exchange.HandleRedeemer = (*Server)(nil)

// CheckSettings checks what of c does not depend on its TrustDomain and
// Entries: the lifetimes and the limits. [New] calls it. Errors wrap
// [ErrInvalidConfig].
func (c Config) CheckSettings() error {
	def, maxTTL := orDefault(c.DefaultTTL, DefaultTTL), orDefault(c.MaxTTL, MaxTTL)
	switch {
	case def < MinTTL || def > MaxTTL:
		return fmt.Errorf("%w: default TTL %v is not between %v and %v", ErrInvalidConfig, def, MinTTL, MaxTTL)
	case maxTTL < MinTTL || maxTTL > MaxTTL:
		return fmt.Errorf("%w: maximum TTL %v is not between %v and %v", ErrInvalidConfig, maxTTL, MinTTL, MaxTTL)
	case def > maxTTL:
		return fmt.Errorf("%w: default TTL %v exceeds the maximum TTL %v", ErrInvalidConfig, def, maxTTL)
	case c.Rate < 0 || c.Burst < 0:
		return fmt.Errorf("%w: negative rate limit", ErrInvalidConfig)
	case c.MaxLive < 0:
		return fmt.Errorf("%w: negative maximum of live launches", ErrInvalidConfig)
	}
	for _, uid := range c.AllowedUIDs {
		if uid < 0 {
			return fmt.Errorf("%w: uid %d is negative", ErrInvalidConfig, uid)
		}
	}
	for _, p := range c.PathPrefixes {
		if err := spiffeid.ValidatePath(p); err != nil || p == "" {
			return fmt.Errorf("%w: path prefix %q is not a SPIFFE ID path (\"/sandbox\"): %v", ErrInvalidConfig, p, err)
		}
		if p == registry.ReservedPath || strings.HasPrefix(p, registry.ReservedPath+"/") {
			return fmt.Errorf("%w: path prefix %q is in the namespace reserved for the server and its agents", ErrInvalidConfig, p)
		}
	}
	return nil
}

// underPrefix reports whether path is one of prefixes or below one.
func underPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// New checks cfg and returns the server. It opens nothing.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.TrustDomain.IsZero():
		return nil, fmt.Errorf("%w: no trust domain", ErrInvalidConfig)
	case cfg.Entries == nil:
		return nil, fmt.Errorf("%w: no entry store", ErrInvalidConfig)
	}
	if err := cfg.CheckSettings(); err != nil {
		return nil, err
	}
	s := &Server{
		td:         cfg.TrustDomain,
		parent:     ParentID(cfg.TrustDomain),
		entries:    cfg.Entries,
		allowed:    slices.Clone(cfg.AllowedUIDs),
		prefixes:   slices.Clone(cfg.PathPrefixes),
		defaultTTL: orDefault(cfg.DefaultTTL, DefaultTTL),
		maxTTL:     orDefault(cfg.MaxTTL, MaxTTL),
		limit:      rate.NewLimiter(orDefault(cfg.Rate, DefaultRate), orDefault(cfg.Burst, DefaultBurst)),
		maxLive:    orDefault(cfg.MaxLive, DefaultMaxLive),
		roots:      cfg.X509Authorities,
		jwtKeys:    cfg.JWTAuthorities,
		witKeys:    cfg.WITAuthorities,
		log:        cfg.Logger,
		now:        cfg.Now,
	}
	if len(s.allowed) == 0 {
		s.allowed = []int{0, os.Getuid()}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.Live != nil {
		s.live = liveFunc(cfg.Live)
	} else {
		s.live = &ownCount{parent: s.parent, entries: cfg.Entries, now: s.now, launches: map[string]time.Time{}}
	}
	return s, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Params are the inputs of [Server.Launch].
type Params struct {
	// SPIFFEID is the identity the sandbox obtains: a workload ID of the
	// trust domain, outside the reserved namespace. Required.
	SPIFFEID spiffeid.ID
	// TTL is the launch's lifetime: the handle is redeemable, and the
	// SVIDs it obtains valid, until it ends; then its entry is deleted.
	// Zero means Config.DefaultTTL; at least MinTTL, at most
	// Config.MaxTTL.
	TTL time.Duration
	// X509SVIDTTL and JWTSVIDTTL are the SVIDs' lifetimes, at most TTL.
	// Zero means DefaultX509SVIDTTL and DefaultJWTSVIDTTL, cut to TTL.
	X509SVIDTTL, JWTSVIDTTL time.Duration
	// Hint is the launcher's metadata (a sandbox or job name), kept as
	// the entry's hint: at most registry.MaxHintLen bytes, no control
	// characters.
	Hint string
}

// Launch is a launch as made: its handle is given once, here.
type Launch struct {
	// ID names the launch: its registration entry's ID.
	ID string
	// SPIFFEID is the identity the handle obtains.
	SPIFFEID spiffeid.ID
	// Handle is the one-time secret the sandbox redeems at the token
	// exchange (subject_token_type exchange.TokenTypeLaunchHandle). Only
	// its digest is stored: this is the only copy. Never log it.
	Handle string
	// ExpiresAt is when the launch ends.
	ExpiresAt time.Time
	// X509SVIDTTL and JWTSVIDTTL are the SVIDs' lifetimes.
	X509SVIDTTL, JWTSVIDTTL time.Duration
	// X509Authorities are the trust domain's X.509 authorities, from
	// Config.X509Authorities; nil without it.
	X509Authorities []*x509.Certificate
	// JWTAuthorities are the trust domain's JWT authorities by key ID,
	// from Config.JWTAuthorities (not nil, empty when it returned none);
	// nil without it.
	JWTAuthorities map[string]crypto.PublicKey
	// WITAuthorities are the trust domain's WIT authorities by key ID,
	// from Config.WITAuthorities (not nil, empty when it returned none,
	// as from a server that signs no WIT-SVIDs); nil without it.
	WITAuthorities map[string]crypto.PublicKey
}

// Launch makes a launch: a registration entry for p.SPIFFEID, parented by
// ParentID, expiring after p.TTL, whose selector holds the digest of a
// new 256-bit handle. Errors wrap ErrInvalid (p is refused),
// ErrRateLimited, ErrTooManyLive (Config.MaxLive launches are alive), or
// are the store's.
func (s *Server) Launch(ctx context.Context, p Params) (Launch, error) {
	if err := s.check(&p); err != nil {
		return Launch{}, err
	}
	if !s.limit.Allow() {
		return Launch{}, ErrRateLimited
	}
	made, err := s.live.reserve(ctx, s.maxLive)
	if err != nil {
		return Launch{}, err
	}
	l, err := s.launch(ctx, p)
	made(l.ID, l.ExpiresAt, err == nil)
	return l, err
}

// launch makes the launch of p, checked.
func (s *Server) launch(ctx context.Context, p Params) (Launch, error) {
	var secret [secretSize]byte
	rand.Read(secret[:]) // crypto/rand.Read never fails
	digest := sha256.Sum256(secret[:])
	// Stores keep the expiry to the second: cut down, so that the launch
	// never outlives its TTL.
	expires := s.now().Add(p.TTL).Truncate(time.Second)
	e, err := s.entries.Create(ctx, registry.Entry{
		SPIFFEID:    p.SPIFFEID,
		ParentID:    s.parent,
		Selectors:   []attest.Selector{{Type: SelectorType, Value: pendingPrefix + hex.EncodeToString(digest[:])}},
		X509SVIDTTL: p.X509SVIDTTL,
		JWTSVIDTTL:  p.JWTSVIDTTL,
		Hint:        p.Hint,
		ExpiresAt:   expires,
	})
	if err != nil {
		if errors.Is(err, registry.ErrInvalid) {
			return Launch{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		return Launch{}, fmt.Errorf("launch: storing the launch of %s: %w", p.SPIFFEID, err)
	}
	// The audit line: who launched what, until when; never the handle.
	s.log.Info("launch created", append([]any{"launch_id", e.ID, "spiffe_id", e.SPIFFEID.String(), "expires_at", e.ExpiresAt.UTC(),
		"hint", e.Hint}, callerAttrs(ctx)...)...)
	l := Launch{
		ID: e.ID, SPIFFEID: e.SPIFFEID, ExpiresAt: e.ExpiresAt,
		Handle:      e.ID + "." + base64.RawURLEncoding.EncodeToString(secret[:]),
		X509SVIDTTL: e.X509SVIDTTL, JWTSVIDTTL: e.JWTSVIDTTL,
	}
	if s.roots != nil {
		l.X509Authorities = s.roots()
	}
	l.JWTAuthorities = keysNow(s.jwtKeys)
	l.WITAuthorities = keysNow(s.witKeys)
	return l, nil
}

// keysNow returns a copy of the keys keys returns, never nil, or nil
// when keys is nil.
func keysNow(keys func() map[string]crypto.PublicKey) map[string]crypto.PublicKey {
	if keys == nil {
		return nil
	}
	if m := maps.Clone(keys()); m != nil {
		return m
	}
	return map[string]crypto.PublicKey{}
}

// check refuses what may not be launched and fills p's defaults.
func (s *Server) check(p *Params) error {
	switch {
	case p.SPIFFEID.IsZero():
		return fmt.Errorf("%w: no SPIFFE ID", ErrInvalid)
	case !p.SPIFFEID.MemberOf(s.td):
		return fmt.Errorf("%w: SPIFFE ID %q is not in trust domain %q", ErrInvalid, p.SPIFFEID, s.td)
	case p.SPIFFEID.Path() == "":
		return fmt.Errorf("%w: SPIFFE ID %q has no path", ErrInvalid, p.SPIFFEID)
	case registry.Reserved(p.SPIFFEID):
		// The server's and the agents' namespace: a sandbox holding such
		// an ID would pass for the server or an agent.
		return fmt.Errorf("%w: SPIFFE ID %q is reserved for the server and its agents (spiffe://%s%s/...)",
			ErrInvalid, p.SPIFFEID, s.td.Name(), registry.ReservedPath)
	case len(s.prefixes) > 0 && !underPrefix(p.SPIFFEID.Path(), s.prefixes):
		return fmt.Errorf("%w: SPIFFE ID %q is outside the paths launches may take (%s)", ErrInvalid, p.SPIFFEID, strings.Join(s.prefixes, ", "))
	}
	if p.TTL == 0 {
		p.TTL = s.defaultTTL
	}
	if p.TTL < MinTTL || p.TTL > s.maxTTL {
		return fmt.Errorf("%w: TTL %v is not between %v and %v", ErrInvalid, p.TTL, MinTTL, s.maxTTL)
	}
	for _, t := range []struct {
		name string
		ttl  *time.Duration
		def  time.Duration
	}{{"X509-SVID", &p.X509SVIDTTL, DefaultX509SVIDTTL}, {"JWT-SVID", &p.JWTSVIDTTL, DefaultJWTSVIDTTL}} {
		switch {
		case *t.ttl == 0:
			*t.ttl = min(t.def, p.TTL)
		case *t.ttl < registry.MinSVIDTTL || *t.ttl > p.TTL:
			return fmt.Errorf("%w: %s TTL %v is not between %v and the launch's TTL %v", ErrInvalid, t.name, *t.ttl, registry.MinSVIDTTL, p.TTL)
		}
	}
	return nil
}

// Redeem consumes handle and returns the entry of its launch, as
// exchange.HandleRedeemer. The handle's secret is compared with the stored
// digest in constant time; a wrong secret leaves the launch redeemable (a
// caller who knows only the ID must not be able to burn it). Once the
// secret, the expiry and the SPIFFE ID pass, check (when not nil) is
// called with the entry before the handle is spent: its error is returned
// as it is and leaves the launch redeemable, so that the token exchange
// refuses a request it could not honour (another spiffe_id) without
// costing the sandbox its identity; only the handle's holder gets that
// far. Of several concurrent redemptions of one handle, on any servers
// sharing the store, exactly one succeeds: the entry is updated at the
// revision read. Refusals (malformed, unknown, ended, redeemed, expired,
// wrong, an entry under ParentID without an expiry, which Launch never
// writes) wrap exchange.ErrInvalidToken; other errors are check's or the
// store's.
func (s *Server) Redeem(ctx context.Context, handle string, check func(registry.Entry) error) (registry.Entry, error) {
	id, secret, err := parseHandle(handle)
	if err != nil {
		return registry.Entry{}, refusef("%v", err)
	}
	e, err := s.entries.Get(ctx, id)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return registry.Entry{}, refusef("no launch %s: unknown, ended or expired", id)
	case err != nil:
		return registry.Entry{}, fmt.Errorf("launch: reading launch %s: %w", id, err)
	case e.ParentID != s.parent:
		return registry.Entry{}, refusef("entry %s is not a launch", id)
	case e.ExpiresAt.IsZero():
		// Launch always sets an expiry: an entry under the launches'
		// parent without one was written by other means, and would give
		// an identity without end.
		return registry.Entry{}, refusef("entry %s has no expiry: it is not a launch", id)
	}
	digest, redeemed := state(e)
	if redeemed {
		return registry.Entry{}, refusef("launch %s was already redeemed", id)
	}
	want, err := hex.DecodeString(digest)
	got := sha256.Sum256(secret)
	// Constant time, so that the answer's timing says nothing of how
	// much of a guessed secret's digest matched.
	if err != nil || subtle.ConstantTimeCompare(got[:], want) != 1 {
		return registry.Entry{}, refusef("wrong secret for launch %s", id)
	}
	if e.Expired(s.now()) {
		return registry.Entry{}, refusef("launch %s expired at %s", id, e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if !e.SPIFFEID.MemberOf(s.td) || registry.Reserved(e.SPIFFEID) {
		return registry.Entry{}, refusef("launch %s names SPIFFE ID %q, which may not be issued", id, e.SPIFFEID)
	}
	if check != nil {
		if err := check(e.Clone()); err != nil {
			s.log.Info("launch redemption refused, the handle unspent", "launch_id", id, "spiffe_id", e.SPIFFEID.String(), "reason", err.Error())
			return registry.Entry{}, err
		}
	}
	// Single use: the update succeeds only at the revision read, so of
	// all the redemptions that read it, one wins.
	next := e.Clone()
	next.Selectors = []attest.Selector{{Type: SelectorType, Value: redeemedPrefix + digest}}
	updated, err := s.entries.Update(ctx, next)
	switch {
	case errors.Is(err, registry.ErrConflict), errors.Is(err, registry.ErrNotFound):
		return registry.Entry{}, refusef("launch %s was already redeemed or ended", id)
	case err != nil:
		return registry.Entry{}, fmt.Errorf("launch: redeeming launch %s: %w", id, err)
	}
	s.log.Info("launch redeemed", "launch_id", id, "spiffe_id", e.SPIFFEID.String(), "expires_at", e.ExpiresAt.UTC())
	return updated, nil
}

// refusef returns an error wrapping exchange.ErrInvalidToken. Callers must
// not pass the handle.
func refusef(format string, args ...any) error {
	return fmt.Errorf("%w: launch: "+format, append([]any{exchange.ErrInvalidToken}, args...)...)
}

// state returns the digest of a launch's handle and whether it was
// redeemed; an entry without a launch selector has no digest.
func state(e registry.Entry) (digest string, redeemed bool) {
	for _, sel := range e.Selectors {
		if sel.Type != SelectorType {
			continue
		}
		if d, ok := strings.CutPrefix(sel.Value, pendingPrefix); ok {
			return d, false
		}
		if d, ok := strings.CutPrefix(sel.Value, redeemedPrefix); ok {
			return d, true
		}
	}
	return "", false
}

// parseHandle splits a handle into its launch ID and decoded secret. Its
// errors never hold the handle.
func parseHandle(handle string) (id string, secret []byte, err error) {
	id, enc, ok := strings.Cut(handle, ".")
	switch {
	case len(handle) > 64+1+secretEncodedLen:
		return "", nil, errors.New("the handle is too long")
	case !ok:
		return "", nil, errors.New("the handle has no '.' between ID and secret")
	case !registry.ValidEntryID(id):
		return "", nil, errors.New("the handle's ID is malformed")
	case len(enc) != secretEncodedLen:
		return "", nil, errors.New("the handle's secret is malformed")
	}
	// Strict: one secret has one spelling.
	secret, err = base64.RawURLEncoding.Strict().DecodeString(enc)
	if err != nil || len(secret) != secretSize {
		return "", nil, errors.New("the handle's secret is malformed")
	}
	return id, secret, nil
}

// Info is what [Server.Get] tells of a launch; never its handle.
type Info struct {
	ID        string
	SPIFFEID  spiffeid.ID
	Hint      string
	ExpiresAt time.Time
	// Redeemed reports whether the handle was redeemed.
	Redeemed bool
}

// Get returns the launch id. Errors wrap ErrNotFound when id names no
// launch, or are the store's.
func (s *Server) Get(ctx context.Context, id string) (Info, error) {
	e, err := s.entry(ctx, id)
	if err != nil {
		return Info{}, err
	}
	_, redeemed := state(e)
	return Info{ID: e.ID, SPIFFEID: e.SPIFFEID, Hint: e.Hint, ExpiresAt: e.ExpiresAt, Redeemed: redeemed}, nil
}

// entry reads the entry of launch id: an entry parented by ParentID.
// Others are not the launcher's to see or end.
func (s *Server) entry(ctx context.Context, id string) (registry.Entry, error) {
	if !registry.ValidEntryID(id) {
		return registry.Entry{}, ErrNotFound
	}
	e, err := s.entries.Get(ctx, id)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return registry.Entry{}, ErrNotFound
	case err != nil:
		return registry.Entry{}, fmt.Errorf("launch: reading launch %s: %w", id, err)
	case e.ParentID != s.parent:
		return registry.Entry{}, ErrNotFound
	}
	return e, nil
}

// End ends launch id before its TTL: its entry is deleted, so that its
// handle is redeemed no more. SVIDs already obtained stay valid until
// they expire, which is at the launch's expiry at the latest. Errors wrap
// ErrNotFound when id names no launch, or are the store's.
func (s *Server) End(ctx context.Context, id string) error {
	// A redemption may update the entry between the read and the delete:
	// read again.
	for range 3 {
		e, err := s.entry(ctx, id)
		if err != nil {
			return err
		}
		_, err = s.entries.Delete(ctx, id, e.Revision)
		switch {
		case err == nil:
			s.live.ended(id)
			_, redeemed := state(e)
			s.log.Info("launch ended", append([]any{"launch_id", id, "spiffe_id", e.SPIFFEID.String(), "redeemed", redeemed},
				callerAttrs(ctx)...)...)
			return nil
		case errors.Is(err, registry.ErrNotFound):
			return ErrNotFound
		case !errors.Is(err, registry.ErrConflict):
			return fmt.Errorf("launch: ending launch %s: %w", id, err)
		}
	}
	return fmt.Errorf("launch: ending launch %s: %w", id, registry.ErrConflict)
}
