package server

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server/internal/mint"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Defaults of Config.
const (
	DefaultBindAddr     = "127.0.0.1:8081"
	DefaultPollInterval = 30 * time.Second
	// DefaultEntryPruneInterval is how often expired entries are deleted
	// unless Config.EntryPruneInterval says otherwise: every 5 minutes, as
	// SPIRE's server prunes them.
	DefaultEntryPruneInterval = 5 * time.Minute
)

// ErrInvalidConfig is wrapped by the errors [New] returns for a Config it
// cannot honour: a required field missing, a negative interval, a node
// attestor filed under another name than its Type, a bad federation
// relationship or bundle endpoint setting. Errors that come from the
// environment (a busy port, a store that does not answer) do not wrap it.
var ErrInvalidConfig = errors.New("server: invalid configuration")

// invalidf returns an error wrapping ErrInvalidConfig.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// Config configures New. The struct is copied; the values it holds
// (stores, key manager, attestors) are used, not copied, and stay the
// caller's to close.
//
// Config holds Go values only: loading files, opening databases and
// reloading certificates are the program's job. [DataDir] and [OpenSQLite]
// fill the common case: a server whose state lives in a directory.
type Config struct {
	// TrustDomain is the trust domain the server issues identities in.
	// Required.
	TrustDomain spiffeid.TrustDomain

	// Stores keep the registry: entries, agents, join tokens, federated
	// bundles and the servers' shares of the bundle. Required (every
	// field); [StoresOf] fills them from one backend. Servers given stores
	// over one shared database serve one trust domain together.
	Stores Stores

	// KeyManager keeps the CA's signing keys (see package ca/keymanager).
	// Required. Keys it loses with the process (keymanager.Memory) make a
	// CA that starts afresh on every New.
	KeyManager ca.KeyManager

	// Upstream, when not nil, signs the server's X.509 CAs, which are then
	// intermediates under its roots (see package ca/upstream). Nil makes
	// each CA a self-signed root.
	Upstream ca.UpstreamAuthority

	// Journal records the CA's rotation state, so that a restarted server
	// keeps its authorities; it refers to keys by ID, so it must be paired
	// with the same persistent KeyManager. Nil keeps the state in memory.
	Journal rotation.Journal

	// ServerID names the server among the servers of its trust domain
	// sharing Stores; it must be stable across restarts, since the server
	// publishes its share of the bundle under it. At most
	// registry.MaxServerIDLen bytes of UTF-8 text without control
	// characters. Empty means a random ID, new on every
	// New.
	ServerID string

	// DataDirLock, when not nil, holds the data directory of KeyManager,
	// Journal and ServerID for this server alone ([DataDir] takes it).
	// The Server owns it from New: Close releases it, and so does New
	// when it fails. A Config that is never given to New should have it
	// closed by whoever made it. Nil holds nothing.
	DataDirLock io.Closer

	// NodeAttestors are the node attestors agents may use, each filed
	// under its Type ("join_token", "x509pop", ...). Empty means join_token
	// alone, over Stores.Tokens (see attest/jointoken): tokens are made
	// through the admin API. To offer join_token beside others, list it.
	NodeAttestors map[string]attest.NodeAttestor

	// BindAddr is the address of the node API. Empty means
	// DefaultBindAddr; port 0 picks a free port (see Server.Addr).
	BindAddr string

	// AdminSocket is the path of the administration socket (mode 0600;
	// only root and the server's own uid may use it). Empty disables it.
	AdminSocket string

	// CATTL, X509SVIDTTL, JWTSVIDTTL and AgentSVIDTTL are lifetimes; zero
	// means the defaults of ca/rotation (24 h CA, 1 h X509-SVID, 5 min
	// JWT-SVID) and nodeapi/nodeserver (1 h agent
	// SVID).
	CATTL, X509SVIDTTL, JWTSVIDTTL, AgentSVIDTTL time.Duration

	// WITSVIDs, when true, has the CA keep a rotating WIT-SVID signing key
	// (an incubating standard, hence opt-in), published in the trust
	// domain's bundle with use "wit-svid", and lets agents have WIT-SVIDs
	// signed for their entries (nodeapi.Client.SignWITSVID). False (the
	// default) leaves the bundle without WIT keys, and agents asking for a
	// WIT-SVID are told the server does not issue them.
	WITSVIDs bool

	// WITSVIDTTL is the lifetime of WIT-SVIDs. Zero means
	// ca.DefaultWITSVIDTTL (1 hour).
	WITSVIDTTL time.Duration

	// JWTSVIDJTI, when true, gives every JWT-SVID the server signs a random
	// "jti" claim, which some relying parties (identity brokers that detect
	// replays) require. False leaves it out, as the JWT-SVID standard does.
	JWTSVIDJTI bool

	// JWTIssuer, when not empty, is the "iss" claim of every JWT-SVID the
	// server signs, as SPIRE's jwt_issuer: OpenID Connect clients compare
	// it with the issuer of the OIDC discovery document that publishes the
	// trust domain's JWT keys. Empty leaves it out.
	JWTIssuer string

	// PollInterval is the safety net behind the stores' notifications.
	// A store that is a registry.Notifier tells the server of writes at
	// once: registry/memstore and SQLite of the server's own, PostgreSQL of
	// every server's (through LISTEN/NOTIFY; see sqlstore.Store.Run). The
	// server then reads what changed: the registry's change feed, the agent
	// records (evictions, bans), the other servers' authorities and the
	// federated bundles. Every PollInterval it reads them anyway, in case a
	// notification was lost or a store tells of none. Zero means
	// DefaultPollInterval (30 s).
	PollInterval time.Duration

	// MaxHandshakes is how many TLS handshakes of agents' connections the
	// node API computes at once. The others wait their turn (those already
	// begun first), at most HandshakeWait, after which their connection
	// is closed and the agent retries after its backoff; such closes are
	// counted (Stats.HandshakesRefused). It keeps a reconnect storm of
	// thousands of agents from starving the connections already made.
	// Zero means two per CPU (see nodeserver.Config.MaxHandshakes). The
	// effective value, and HandshakeWait's, are in the "server ready" log
	// line.
	MaxHandshakes int

	// HandshakeWait bounds a handshake's wait for a turn (MaxHandshakes).
	// Zero means nodeserver.DefaultHandshakeWait (10 s).
	HandshakeWait time.Duration

	// EntryPruneInterval is how often the server deletes the entries whose
	// expiry (registry.Entry.ExpiresAt) has passed. An entry is served to
	// no agent from its expiry on, pruned or not: pruning only removes it
	// from the store. Servers sharing a store may all prune; each deletes an
	// entry at the revision it saw expire, so an entry updated meanwhile (a
	// later expiry) stays. Zero means DefaultEntryPruneInterval (5 minutes).
	EntryPruneInterval time.Duration

	// FederationBind, when not empty, is the address of the trust domain's
	// bundle endpoint: HTTPS, path "/", no client authentication (Fed rules
	// 9, 10). Port 0 picks a free port (see Server.FederationAddr). Empty
	// serves no bundle endpoint.
	FederationBind string

	// FederationProfile is how the bundle endpoint authenticates:
	// ProfileHTTPSSPIFFE (empty means it) presents the server's own
	// X509-SVID, spiffe://<trust domain>/spiffekit/server, renewed on its
	// own and re-minted when the CA rotates; ProfileHTTPSWeb presents what
	// FederationCertificate returns.
	FederationProfile Profile

	// FederationCertificate returns the Web PKI certificate of an
	// https_web bundle endpoint, as tls.Config.GetCertificate does: it is
	// called in every TLS handshake, so it must be cheap and safe for
	// concurrent use, and may return a renewed certificate at any time.
	// Required with ProfileHTTPSWeb, refused with ProfileHTTPSSPIFFE. For a
	// fixed certificate: func(*tls.ClientHelloInfo) (*tls.Certificate,
	// error) { return &cert, nil }.
	FederationCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// Federation lists the foreign trust domains whose bundle endpoints the
	// server polls, storing each bundle in Stores.Bundles (see
	// Relationship). Removing a relationship stops the polling but leaves
	// the stored bundle: delete it with the admin API (`bundle delete`) to
	// end the federation (Fed rule 4).
	Federation []Relationship

	// FederationRefresh is the longest time between two polls of a bundle
	// endpoint; a bundle's refresh hint, when shorter, is followed (Fed
	// rule 21). Zero means DefaultFederationRefresh (5 minutes).
	FederationRefresh time.Duration

	// FederationTimeout bounds each fetch from a bundle endpoint. Zero
	// means DefaultFederationTimeout (30 s).
	FederationTimeout time.Duration

	// FederationConcurrency bounds the fetches from bundle endpoints under
	// way at once, in each of two pools: one for the relationships whose
	// last fetch succeeded, one for those whose last fetch failed or that
	// never fetched. Zero means DefaultFederationConcurrency (32). A dead
	// endpoint holds its fetch until FederationTimeout, in the second pool:
	// however many there are, they never keep a healthy relationship
	// waiting, and fewer than the bound never keep a new one waiting.
	FederationConcurrency int

	// FederationWebPKIRoots are the CA certificates that the certificate of
	// the https_web bundle endpoint of a relationship kept in
	// Stores.Federation must chain to. Nil means the system roots. (A
	// relationship of Config.Federation has its own, WebPKIRoots.)
	FederationWebPKIRoots *x509.CertPool

	// TokenExchange, when not nil, serves OAuth 2.0 token exchange
	// (RFC 8693) on a listener of its own: an identity token of a trusted
	// issuer in, an SVID out (see TokenExchange). Nil serves none.
	TokenExchange *TokenExchange

	// Launcher, when not nil, serves the launcher API on a unix socket
	// (see Launcher): on-demand identities for sandboxes, redeemed at the
	// token exchange endpoint, which it requires. Nil serves none.
	Launcher *Launcher

	// Logger receives the server's events. Nil discards them.
	Logger *slog.Logger

	// Now returns the current time, for everything the server decides by
	// the clock: the CA's rotation and the lifetimes it signs, the
	// expiry of agent SVIDs and join tokens, the certificates it verifies,
	// the shared bundle's renewal. Nil means time.Now. The stores keep
	// their own clock (see registry/memstore and registry/sqlstore).
	Now func() time.Time

	// NodeObserver, when not nil, is told of every node API call, node
	// attestation and signing (see nodeserver.Observer). Nil costs nothing.
	// The server's state is read with Stats.
	NodeObserver nodeserver.Observer
}

// Stores are the records an issuing server keeps. Each field is an
// interface of package registry, so that any backend fits; registry/memstore
// and registry/sqlstore implement them all ([StoresOf]).
//
// Optional capabilities are found by type assertion: an Entries store that
// is a registry.BatchCreator creates the admin API's batches in one write;
// a store that is a registry.Notifier has its writes reach agents at once
// rather than at the next poll (Config.PollInterval). A store with a method Run(ctx
// context.Context) error (registry/sqlstore's PostgreSQL listener) is run
// by [Server.Run], once per store value however many fields hold it, so
// its caller must not run it too.
type Stores struct {
	// Entries keeps the registration entries and their change feed.
	Entries registry.Store
	// Agents keeps the records of attested agents; servers sharing it
	// share evictions and bans.
	Agents registry.AgentStore
	// Tokens keeps join tokens: the admin API makes them, the join_token
	// node attestor consumes them, the server prunes expired ones.
	Tokens registry.TokenStore
	// Bundles keeps the bundles of foreign trust domains.
	Bundles registry.BundleStore
	// ServerBundles keeps each server's share of the trust domain's own
	// bundle, with the state of its authorities, and the operators' taints
	// and revocations of those authorities.
	ServerBundles registry.ServerBundleStore
	// Federation, when not nil, keeps the federation relationships made
	// through the admin API (SPIRE's `federation create`), beside those of
	// Config.Federation; servers sharing it poll the same bundle
	// endpoints. A relationship written to it is polled without a restart.
	// Nil: only Config.Federation, and the admin API's federation routes
	// answer 404.
	Federation registry.FederationStore
}

// A Backend keeps every record of [Stores], as registry/memstore and
// registry/sqlstore do.
type Backend interface {
	registry.Store
	registry.AgentStore
	registry.TokenStore
	registry.BundleStore
	registry.ServerBundleStore
}

// StoresOf returns Stores whose every field is b; Federation too when b is
// a registry.FederationStore, as registry/memstore and registry/sqlstore
// are.
func StoresOf(b Backend) Stores {
	st := Stores{Entries: b, Agents: b, Tokens: b, Bundles: b, ServerBundles: b}
	if f, ok := b.(registry.FederationStore); ok {
		st.Federation = f
	}
	return st
}

// check reports the first missing store.
func (st Stores) check() error {
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"Entries", st.Entries == nil},
		{"Agents", st.Agents == nil},
		{"Tokens", st.Tokens == nil},
		{"Bundles", st.Bundles == nil},
		{"ServerBundles", st.ServerBundles == nil},
	} {
		if f.missing {
			return invalidf("Config.Stores.%s is required", f.name)
		}
	}
	return nil
}

// MaxSocketPath is the longest path a unix socket can be bound to on
// Linux: sun_path holds 108 bytes, the terminating NUL included.
const MaxSocketPath = 107

// Validate checks what of cfg can be checked before anything is opened or
// created, so that a program finds a mistake in its configuration before
// it makes keys, a journal or a database: the trust domain, lifetimes and
// intervals, the JWT issuer, the node attestors, the listen addresses and
// the admin socket's path, the bundle endpoint's settings and the
// federation relationships (all but whether a self-serving https_spiffe
// endpoint without a bootstrap bundle has one stored, which needs the
// stores). KeyManager and Stores may be unset. Its errors wrap
// [ErrInvalidConfig]. New checks all of it again, and the rest.
func Validate(cfg Config) error {
	if err := checkStatic(&cfg); err != nil {
		return err
	}
	_, err := validateRelationships(cfg.TrustDomain, cfg.Federation, func(spiffeid.TrustDomain) (bool, error) { return true, nil })
	return err
}

// checkConfig checks cfg and sets its defaults.
func checkConfig(cfg *Config) error {
	if err := checkStatic(cfg); err != nil {
		return err
	}
	if cfg.KeyManager == nil {
		return invalidf("Config.KeyManager is required")
	}
	return cfg.Stores.check()
}

// checkAddr checks a listen address: host:port, the port a number.
func checkAddr(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalidf("%s %q: %v", name, addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return invalidf("%s %q: the port must be a number from 0 to 65535", name, addr)
	}
	return nil
}

// checkStatic checks what needs neither stores nor keys, and sets the
// defaults.
func checkStatic(cfg *Config) error {
	switch {
	case cfg.TrustDomain.IsZero():
		return invalidf("Config.TrustDomain is required")
	case len(cfg.AdminSocket) > MaxSocketPath:
		return invalidf("the admin socket path %s is longer than the %d bytes a unix socket allows", cfg.AdminSocket, MaxSocketPath)
	case len(cfg.ServerID) > registry.MaxServerIDLen:
		return invalidf("Config.ServerID is longer than %d bytes", registry.MaxServerIDLen)
	case !utf8.ValidString(cfg.ServerID) || strings.ContainsFunc(cfg.ServerID, unicode.IsControl):
		return invalidf("Config.ServerID must be UTF-8 text without control characters")
	case cfg.PollInterval < 0 || cfg.FederationRefresh < 0 || cfg.FederationTimeout < 0 || cfg.EntryPruneInterval < 0 || cfg.HandshakeWait < 0:
		return invalidf("intervals must not be negative")
	case cfg.CATTL < 0 || cfg.X509SVIDTTL < 0 || cfg.JWTSVIDTTL < 0 || cfg.AgentSVIDTTL < 0 || cfg.WITSVIDTTL < 0:
		return invalidf("lifetimes must not be negative")
	case cfg.FederationConcurrency < 0:
		return invalidf("Config.FederationConcurrency must not be negative")
	case cfg.MaxHandshakes < 0:
		return invalidf("Config.MaxHandshakes must not be negative")
	}
	if cfg.JWTIssuer != "" {
		if err := mint.CheckIssuer(cfg.JWTIssuer); err != nil {
			return invalidf("Config.JWTIssuer: %v", err)
		}
	}
	for name, a := range cfg.NodeAttestors {
		switch {
		case a == nil:
			return invalidf("node attestor %q is nil", name)
		case a.Type() != name:
			return invalidf("node attestor %q has Type %q", name, a.Type())
		}
	}
	if err := checkEndpointConfig(cfg); err != nil {
		return err
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = DefaultBindAddr
	}
	if err := checkAddr("the node API address", cfg.BindAddr); err != nil {
		return err
	}
	if cfg.FederationBind != "" {
		if err := checkAddr("the bundle endpoint address", cfg.FederationBind); err != nil {
			return err
		}
		if sameListener(cfg.BindAddr, cfg.FederationBind) {
			return invalidf("the node API and the bundle endpoint both listen on %s", cfg.BindAddr)
		}
	}
	if err := checkExchangeConfig(cfg); err != nil {
		return err
	}
	if err := checkLauncherConfig(cfg); err != nil {
		return err
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.EntryPruneInterval == 0 {
		cfg.EntryPruneInterval = DefaultEntryPruneInterval
	}
	if cfg.FederationRefresh == 0 {
		cfg.FederationRefresh = DefaultFederationRefresh
	}
	if cfg.FederationTimeout == 0 {
		cfg.FederationTimeout = DefaultFederationTimeout
	}
	if cfg.FederationConcurrency == 0 {
		cfg.FederationConcurrency = DefaultFederationConcurrency
	}
	return nil
}

// checkEndpointConfig checks the bundle endpoint settings and sets the
// default profile.
func checkEndpointConfig(cfg *Config) error {
	if cfg.FederationBind == "" {
		if cfg.FederationCertificate != nil || cfg.FederationProfile != "" {
			return invalidf("a bundle endpoint profile or certificate is set but no FederationBind")
		}
		return nil
	}
	switch cfg.FederationProfile {
	case "", ProfileHTTPSSPIFFE:
		cfg.FederationProfile = ProfileHTTPSSPIFFE
		if cfg.FederationCertificate != nil {
			return invalidf("the https_spiffe bundle endpoint presents the server's X509-SVID; FederationCertificate is for https_web")
		}
	case ProfileHTTPSWeb:
		if cfg.FederationCertificate == nil {
			return invalidf("the https_web bundle endpoint needs FederationCertificate")
		}
	default:
		return invalidf("unknown bundle endpoint profile %q (want https_spiffe or https_web)", cfg.FederationProfile)
	}
	return nil
}

// sameListener reports whether two valid listen addresses name the same
// port of the same host, a port other than 0 (which picks a free one).
func sameListener(a, b string) bool {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	if pa != pb || pa == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wild(ha) || wild(hb)
}
