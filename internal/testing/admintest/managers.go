package admintest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Authorities is an adminserver.AuthorityManager over a fixed list, which
// records the calls it answers. Each action answers the first authority
// of its kind it concerns (the prepared one, the active one, the one with
// the ID); tainting one that is not old fails with
// admin.ErrFailedPrecondition, and an authority it does not hold with
// registry.ErrNotFound.
type Authorities struct {
	mu    sync.Mutex
	list  []admin.Authority
	err   error
	calls []string
}

var _ adminserver.AuthorityManager = (*Authorities)(nil)

// NewAuthorities returns a manager of the authorities of list.
func NewAuthorities(list []admin.Authority) *Authorities {
	return &Authorities{list: list}
}

// WithAuthorities has the server operate its authorities through f.
func WithAuthorities(f *Authorities) func(*adminserver.Config) {
	return func(c *adminserver.Config) { c.Authorities = f }
}

func (f *Authorities) record(call string) ([]admin.Authority, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.list, f.err
}

func (f *Authorities) find(kind registry.AuthorityKind, match func(admin.Authority) bool, call string) (admin.Authority, error) {
	list, err := f.record(call)
	if err != nil {
		return admin.Authority{}, err
	}
	for _, a := range list {
		if a.Kind == kind && match(a) {
			return a, nil
		}
	}
	return admin.Authority{}, fmt.Errorf("fake: no %s authority: %w", kind, registry.ErrNotFound)
}

// Authorities answers the list, and records "list".
func (f *Authorities) Authorities(context.Context) ([]admin.Authority, error) {
	return f.record("list")
}

// PrepareAuthority answers the prepared authority of the kind, and records
// "prepare <kind>".
func (f *Authorities) PrepareAuthority(_ context.Context, kind registry.AuthorityKind) (admin.Authority, error) {
	return f.find(kind, func(a admin.Authority) bool { return a.State == registry.AuthorityPrepared }, "prepare "+string(kind))
}

// ActivateAuthority answers the active authority of the kind, and records
// "activate <kind> [<id>]".
func (f *Authorities) ActivateAuthority(_ context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error) {
	return f.find(kind, func(a admin.Authority) bool { return a.State == registry.AuthorityActive }, strings.TrimSpace("activate "+string(kind)+" "+id))
}

// TaintAuthority answers the old authority with the ID, tainted, and
// records "taint <kind> <id>".
func (f *Authorities) TaintAuthority(_ context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error) {
	a, err := f.find(kind, func(a admin.Authority) bool { return a.ID == id }, "taint "+string(kind)+" "+id)
	if err == nil && a.State != registry.AuthorityOld {
		return admin.Authority{}, fmt.Errorf("fake: %s authority %s is %s: %w", kind, id, a.State, admin.ErrFailedPrecondition)
	}
	a.Tainted = true
	return a, err
}

// RevokeAuthority answers the authority with the ID, revoked, and records
// "revoke <kind> <id>".
func (f *Authorities) RevokeAuthority(_ context.Context, kind registry.AuthorityKind, id string) (admin.Authority, error) {
	a, err := f.find(kind, func(a admin.Authority) bool { return a.ID == id }, "revoke "+string(kind)+" "+id)
	a.Revoked = true
	return a, err
}

// SetList replaces the authorities f holds.
func (f *Authorities) SetList(list []admin.Authority) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = list
}

// SetErr makes every call from now on fail with err (nil: none).
func (f *Authorities) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// LastCall returns the call f answered last, "" before any.
func (f *Authorities) LastCall() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

// NotAfter is the end of validity of every authority of
// SampleAuthorities.
var NotAfter = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// SampleAuthorities returns authorities of every kind and state, of two
// servers (s1, which answers, and s2), some tainted, revoked or pending.
func SampleAuthorities() []admin.Authority {
	return []admin.Authority{
		{Kind: registry.AuthorityX509, ID: "0a0a", ServerID: "s1", Local: true, State: registry.AuthorityOld, NotAfter: NotAfter, Tainted: true},
		{Kind: registry.AuthorityX509, ID: "1b1b", ServerID: "s1", Local: true, State: registry.AuthorityActive, NotAfter: NotAfter},
		{Kind: registry.AuthorityX509, ID: "2c2c", ServerID: "s1", Local: true, State: registry.AuthorityPrepared, NotAfter: NotAfter},
		{Kind: registry.AuthorityX509, ID: "3d3d", ServerID: "s2", State: registry.AuthorityOld, NotAfter: NotAfter, Tainted: true, Revoked: true, Pending: true},
		{Kind: registry.AuthorityJWT, ID: "kid-1", ServerID: "s1", Local: true, State: registry.AuthorityActive, NotAfter: NotAfter},
		{Kind: registry.AuthorityJWT, ID: "kid-2", ServerID: "s1", Local: true, State: registry.AuthorityPrepared, NotAfter: NotAfter},
		{Kind: registry.AuthorityWIT, ID: "wit-1", ServerID: "s1", Local: true, State: registry.AuthorityOld, NotAfter: NotAfter, Tainted: true},
		{Kind: registry.AuthorityWIT, ID: "wit-2", ServerID: "s1", Local: true, State: registry.AuthorityActive, NotAfter: NotAfter},
		{Kind: registry.AuthorityWIT, ID: "wit-3", ServerID: "s2", State: registry.AuthorityOld, NotAfter: NotAfter, Tainted: true, Revoked: true, Pending: true},
	}
}

// The trust domains of the federation stand-ins.
var (
	// Partner is a trust domain a test may federate with.
	Partner = spiffeid.RequireTrustDomainFromString("partner.test")
	// Configured is the trust domain of the one relationship of the
	// server's configuration.
	Configured = spiffeid.RequireTrustDomainFromString("configured.test")
	// Down is the trust domain whose bundle endpoint never answers a
	// refresh.
	Down = spiffeid.RequireTrustDomainFromString("down.test")
)

// Federation is an adminserver.FederationManager over a memstore, with
// one relationship of a configuration (with Configured), as the server's
// is: that one cannot be changed (admin.ErrFailedPrecondition).
type Federation struct {
	// Store keeps the relationships.
	Store *memstore.Store
	mu    sync.Mutex
	err   error
}

var _ adminserver.FederationManager = (*Federation)(nil)

// NewFederation returns a manager over a new memstore.
func NewFederation() *Federation {
	return &Federation{Store: memstore.New(memstore.Config{})}
}

// SetErr makes every call from now on fail with err (nil: none).
func (f *Federation) SetErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *Federation) fail() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// Relationships answers the configured relationship, then those stored.
func (f *Federation) Relationships(ctx context.Context) ([]admin.Relationship, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	stored, err := f.Store.ListFederationRelationships(ctx)
	if err != nil {
		return nil, err
	}
	out := []admin.Relationship{{Configured: true, FederationRelationship: registry.FederationRelationship{
		TrustDomain: Configured, BundleEndpointURL: "https://configured.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb,
	}}}
	for _, r := range stored {
		out = append(out, admin.Relationship{FederationRelationship: r})
	}
	return out, nil
}

func (f *Federation) refuse(td spiffeid.TrustDomain) error {
	if err := f.fail(); err != nil {
		return err
	}
	if td == Configured {
		return admin.ErrFailedPrecondition
	}
	return nil
}

// CreateRelationship stores r.
func (f *Federation) CreateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.refuse(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	got, err := f.Store.CreateFederationRelationship(ctx, r)
	return admin.Relationship{FederationRelationship: got}, err
}

// UpdateRelationship replaces the stored relationship with r.TrustDomain.
func (f *Federation) UpdateRelationship(ctx context.Context, r registry.FederationRelationship) (admin.Relationship, error) {
	if err := f.refuse(r.TrustDomain); err != nil {
		return admin.Relationship{}, err
	}
	got, err := f.Store.UpdateFederationRelationship(ctx, r)
	return admin.Relationship{FederationRelationship: got}, err
}

// DeleteRelationship deletes the stored relationship with td.
func (f *Federation) DeleteRelationship(ctx context.Context, td spiffeid.TrustDomain) error {
	if err := f.refuse(td); err != nil {
		return err
	}
	return f.Store.DeleteFederationRelationship(ctx, td)
}

// RefreshingFederation is a Federation that can refresh: the
// relationships stored refresh (changed, sequence number 7), that of Down
// fails as an endpoint that does not answer (admin.ErrUnavailable).
type RefreshingFederation struct {
	*Federation
	mu    sync.Mutex
	calls []spiffeid.TrustDomain
}

var _ adminserver.FederationRefresher = (*RefreshingFederation)(nil)

// NewRefreshingFederation returns a refreshing manager over a new
// memstore.
func NewRefreshingFederation() *RefreshingFederation {
	return &RefreshingFederation{Federation: NewFederation()}
}

// RefreshRelationship refreshes the relationship with td, and records the
// call.
func (f *RefreshingFederation) RefreshRelationship(ctx context.Context, td spiffeid.TrustDomain) (admin.Refreshed, error) {
	f.mu.Lock()
	f.calls = append(f.calls, td)
	f.mu.Unlock()
	if td == Down {
		return admin.Refreshed{}, fmt.Errorf("%w: fetching the bundle of %q failed: connection refused", admin.ErrUnavailable, td.Name())
	}
	if _, err := f.Store.GetFederationRelationship(ctx, td); err != nil {
		return admin.Refreshed{}, err
	}
	return admin.Refreshed{TrustDomain: td, Changed: true, SequenceNumber: 7}, nil
}

// Calls returns the trust domains of the refreshes asked for, in order.
func (f *RefreshingFederation) Calls() []spiffeid.TrustDomain {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]spiffeid.TrustDomain(nil), f.calls...)
}

// Minter is an adminserver.SVIDMinter that mints with the active
// authorities of a real CA, or fails with the error of SetErr.
type Minter struct {
	// CA is the CA that signs; its bundle is the API's own.
	CA  *rotation.Manager
	mu  sync.Mutex
	err error
}

var _ adminserver.SVIDMinter = (*Minter)(nil)

// SetErr makes every mint from now on fail with err (nil: none).
func (m *Minter) SetErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

func (m *Minter) fail() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// MintX509SVID signs an X509-SVID with the CA's active X.509 authority.
func (m *Minter) MintX509SVID(ctx context.Context, id spiffeid.ID, key crypto.PublicKey, dns []string, ttl time.Duration) ([]*x509.Certificate, error) {
	if err := m.fail(); err != nil {
		return nil, err
	}
	return m.CA.X509Authority().SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key, ID: id, DNSNames: dns, TTL: ttl})
}

// MintJWTSVID signs a JWT-SVID with the CA's active JWT key.
func (m *Minter) MintJWTSVID(ctx context.Context, id spiffeid.ID, audience []string, ttl time.Duration) (string, error) {
	if err := m.fail(); err != nil {
		return "", err
	}
	return m.CA.JWTAuthority().SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience, TTL: ttl})
}

// StartMinting is Start with a Minter over a new CA, whose bundle is the
// API's own.
func StartMinting(t testing.TB, modify ...func(*adminserver.Config)) (*Env, *Minter) {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: TrustDomain})
	require.NoError(t, err)
	mi := &Minter{CA: m}
	e := Start(t, append([]func(*adminserver.Config){func(c *adminserver.Config) {
		c.Minter = mi
		c.Bundle = func() *spiffebundle.Bundle { return m.Bundle() }
	}}, modify...)...)
	return e, mi
}

// CSR returns a CSR for the URIs and DNS names, and its key.
func CSR(t testing.TB, uris []string, dns ...string) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.CertificateRequest{DNSNames: dns}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	return csr, key
}

// StartFederation is Start with a Federation over a new memstore.
func StartFederation(t testing.TB, modify ...func(*adminserver.Config)) (*Env, *Federation) {
	t.Helper()
	f := NewFederation()
	return Start(t, append([]func(*adminserver.Config){func(c *adminserver.Config) { c.Federation = f }}, modify...)...), f
}
