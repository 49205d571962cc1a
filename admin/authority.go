package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
)

// An Authority describes one X.509 CA, JWT signing key or WIT signing key
// (servers that sign WIT-SVIDs only) of one of the servers of the trust
// domain, as the server that answers knows it: its own
// at once, the other servers' as they last published them.
type Authority struct {
	// Kind is the kind of authority.
	Kind registry.AuthorityKind
	// ID identifies the authority: the lower-case hexadecimal SubjectKeyId
	// of an X.509 CA's certificate, the kid of a JWT or WIT key.
	ID string
	// ServerID is the ID of the server whose CA holds the authority.
	ServerID string
	// Local says that the server that answered holds the authority.
	Local bool
	// State is where the authority is in its rotation.
	State registry.AuthorityState
	// NotAfter is the end of its validity.
	NotAfter time.Time
	// Tainted says that what the authority signed is being replaced: its
	// server tainted it, or a taint or revocation is recorded for it.
	Tainted bool
	// Revoked says that a revocation is recorded for the authority: no
	// server hands it out in the bundle any more, and its server drops it
	// from its CA (until then it is still listed).
	Revoked bool
	// Pending says that a taint or revocation recorded through another
	// server is not yet applied by the authority's own server (which may
	// be away). Every server honours it meanwhile.
	Pending bool
}

func authorityFromJSON(j wire.Authority) (Authority, error) {
	switch {
	case j.Kind != registry.AuthorityX509 && j.Kind != registry.AuthorityJWT && j.Kind != registry.AuthorityWIT:
		return Authority{}, fmt.Errorf("unknown authority kind %q", j.Kind)
	case j.State != registry.AuthorityPrepared && j.State != registry.AuthorityActive && j.State != registry.AuthorityOld:
		return Authority{}, fmt.Errorf("unknown authority state %q", j.State)
	case j.ID == "":
		return Authority{}, fmt.Errorf("authority ID is missing")
	}
	return Authority(j), nil
}

// ParseAuthorityKind parses "x509", "jwt" or "wit", as the API and the
// command line spell the kinds. Other values fail with an error wrapping
// registry.ErrInvalid.
func ParseAuthorityKind(s string) (registry.AuthorityKind, error) {
	switch k := registry.AuthorityKind(s); k {
	case registry.AuthorityX509, registry.AuthorityJWT, registry.AuthorityWIT:
		return k, nil
	}
	return "", fmt.Errorf("admin: unknown authority kind %q (want x509, jwt or wit): %w", s, registry.ErrInvalid)
}

// Authorities describes every authority of every live server of the trust
// domain: X.509 CAs, then JWT keys, then WIT keys, each kind oldest
// first.
func (c *Client) Authorities(ctx context.Context) ([]Authority, error) {
	var out struct {
		Authorities []wire.Authority `json:"authorities"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/authorities", nil, nil, &out); err != nil {
		return nil, err
	}
	auths := make([]Authority, 0, len(out.Authorities))
	for _, j := range out.Authorities {
		a, err := authorityFromJSON(j)
		if err != nil {
			return nil, fmt.Errorf("admin: malformed authority in answer: %w", err)
		}
		auths = append(auths, a)
	}
	return auths, nil
}

// PrepareAuthority makes a new authority of the kind on the server's CA,
// published in the bundle but not signing yet, and returns it. A prepared
// authority that exists is replaced.
func (c *Client) PrepareAuthority(ctx context.Context, kind registry.AuthorityKind) (Authority, error) {
	return c.authorityAction(ctx, kind, wire.ActionPrepare, "")
}

// ActivateAuthority makes the server's prepared authority of the kind the
// one that signs, and returns it; the active one becomes old. A non-empty
// id must be the prepared authority's ID. Without a prepared authority, or
// with the ID of another one, the error wraps [ErrFailedPrecondition].
// Relying parties that have not yet fetched the bundle holding it reject
// what it signs: prepare, wait for the bundle to spread, then activate.
func (c *Client) ActivateAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error) {
	return c.authorityAction(ctx, kind, wire.ActionActivate, id)
}

// TaintAuthority taints the old authority with the given ID, held by any
// server of the trust domain, and returns it: agents and workloads replace
// what it signed early. The active or a prepared authority cannot be
// tainted (the error wraps [ErrFailedPrecondition]): prepare and activate
// another first. An unknown ID wraps registry.ErrNotFound.
func (c *Client) TaintAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error) {
	return c.authorityAction(ctx, kind, wire.ActionTaint, id)
}

// RevokeAuthority takes the authority with the given ID, held by any server
// of the trust domain, out of the bundle every server hands out, and
// returns it: what it signed stops verifying. The active authority cannot
// be revoked (the error wraps [ErrFailedPrecondition]); taint an old one
// first, and revoke it once what it signed has been replaced.
func (c *Client) RevokeAuthority(ctx context.Context, kind registry.AuthorityKind, id string) (Authority, error) {
	return c.authorityAction(ctx, kind, wire.ActionRevoke, id)
}

func (c *Client) authorityAction(ctx context.Context, kind registry.AuthorityKind, action, id string) (Authority, error) {
	if _, err := ParseAuthorityKind(string(kind)); err != nil {
		return Authority{}, err
	}
	path := "/v1/authorities/" + url.PathEscape(string(kind)) + "/" + action
	var out wire.Authority
	var err error
	switch {
	case (action == wire.ActionTaint || action == wire.ActionRevoke) && id == "":
		return Authority{}, fmt.Errorf("admin: authority ID is required: %w", registry.ErrInvalid)
	case id != "":
		err = c.doJSON(ctx, http.MethodPost, path, wire.AuthorityID{AuthorityID: id}, &out)
	default:
		err = c.do(ctx, http.MethodPost, path, nil, nil, &out)
	}
	if err != nil {
		return Authority{}, err
	}
	a, err := authorityFromJSON(out)
	if err != nil {
		return Authority{}, fmt.Errorf("admin: malformed authority in answer: %w", err)
	}
	return a, nil
}
