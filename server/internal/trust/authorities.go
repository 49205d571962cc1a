package trust

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/registry"
)

// kinds are the kinds of authority, in the order they are listed. A server
// that signs no WIT-SVIDs has no WIT key.
var kinds = []registry.AuthorityKind{registry.AuthorityX509, registry.AuthorityJWT, registry.AuthorityWIT}

// ownAuthorities describes the authorities of the own CA as the server
// publishes them beside its share of the bundle.
func ownAuthorities(m *rotation.Manager) []registry.ServerAuthority {
	var out []registry.ServerAuthority
	for _, k := range kinds {
		for _, i := range infos(m, k) {
			out = append(out, describe(k, i))
		}
	}
	return out
}

// infos returns the own CA's authorities of kind k, oldest first.
func infos(m *rotation.Manager, k registry.AuthorityKind) []rotation.AuthorityInfo {
	switch k {
	case registry.AuthorityX509:
		return m.X509CAs()
	case registry.AuthorityWIT:
		return m.WITKeys()
	}
	return m.JWTKeys()
}

func describe(k registry.AuthorityKind, i rotation.AuthorityInfo) registry.ServerAuthority {
	a := registry.ServerAuthority{
		Kind: k, ID: i.ID, State: registry.AuthorityState(i.State), Tainted: i.Tainted, NotAfter: i.NotAfter,
	}
	if i.Certificate != nil {
		a.Certificate = i.Certificate.Raw
	}
	return a
}

// honoured is what the marks on the other servers' authorities change in
// what a server hands out.
type honoured struct {
	revokedX509 map[string]bool     // DER of CA certificates out of the bundle
	revokedJWT  map[string]bool     // kids of JWT keys out of the bundle
	revokedWIT  map[string]bool     // kids of WIT keys out of the bundle
	tainted     []*x509.Certificate // the other servers' tainted CAs
	taintedJWT  []string            // kids of the other servers' tainted JWT keys
	taintedWIT  []string            // kids of the other servers' tainted WIT keys
}

// honour works out, from the other servers' shares and the recorded marks,
// which of their authorities leave the bundle and which are tainted: those
// their servers tainted, and the old ones a mark names. An authority of a
// kind this version does not know counts for nothing.
// A mark on an authority its server describes as prepared or active is
// not honoured: marks are only ever made for old authorities, and states
// only move forward, so such a mark is corrupt, and honouring it could
// take the CA that signs now out of the bundle.
func honour(peers []registry.ServerBundle, marks []registry.AuthorityMark) honoured {
	h := honoured{revokedX509: map[string]bool{}, revokedJWT: map[string]bool{}, revokedWIT: map[string]bool{}}
	marked := make(map[markKey]registry.AuthorityMark, len(marks))
	for _, m := range marks {
		marked[markKey{m.ServerID, m.Kind, m.AuthorityID}] = m
	}
	for _, p := range peers {
		for _, a := range p.Authorities {
			m, isMarked := marked[markKey{p.ServerID, a.Kind, a.ID}]
			isMarked = isMarked && a.State == registry.AuthorityOld
			switch {
			case isMarked && m.Revoked && a.Kind == registry.AuthorityX509:
				h.revokedX509[string(a.Certificate)] = true
			case isMarked && m.Revoked && a.Kind == registry.AuthorityWIT:
				h.revokedWIT[a.ID] = true
			case isMarked && m.Revoked && a.Kind == registry.AuthorityJWT:
				h.revokedJWT[a.ID] = true
			}
			if !a.Tainted && !isMarked {
				continue
			}
			switch a.Kind {
			case registry.AuthorityJWT:
				h.taintedJWT = append(h.taintedJWT, a.ID)
			case registry.AuthorityWIT:
				h.taintedWIT = append(h.taintedWIT, a.ID)
			case registry.AuthorityX509:
				// Validated by the store as a length only: a certificate
				// that does not parse names no SVID's issuer.
				if c, err := x509.ParseCertificate(a.Certificate); err == nil {
					h.tainted = append(h.tainted, c)
				}
			}
		}
	}
	return h
}

// markKey names the authority a mark is for.
type markKey struct {
	serverID string
	kind     registry.AuthorityKind
	id       string
}

// applyMarks applies to the own CA the recorded taints and revocations of
// its authorities, made through other servers. Failures are logged and
// retried at the next refresh. A mark on an authority that is not old
// cannot come from the admin API, which checks the published state first;
// it is logged once and left alone while the authority is not old.
// t.refreshMu is held.
func (t *View) applyMarks(ctx context.Context, marks []registry.AuthorityMark) {
	for _, m := range marks {
		if m.ServerID != t.serverID || !m.Kind.Known() {
			continue
		}
		i := slices.IndexFunc(infos(t.ca, m.Kind), func(i rotation.AuthorityInfo) bool { return i.ID == m.AuthorityID })
		if i < 0 {
			continue // revoked already, or expired
		}
		info := infos(t.ca, m.Kind)[i]
		log := t.log.With("kind", string(m.Kind), "authority_id", m.AuthorityID)
		if info.State != rotation.StateOld {
			if key := string(m.Kind) + "/" + m.AuthorityID + "/" + string(info.State); !t.warned[key] {
				t.warned[key] = true
				log.Warn("a taint or revocation recorded for an authority that is not old is not applied", "state", string(info.State))
			}
			continue
		}
		var err error
		switch {
		case m.Revoked:
			err = revoke(ctx, t.ca, m.Kind, m.AuthorityID)
			if err == nil {
				log.Info("applied a revocation recorded through another server")
			}
		case !info.Tainted:
			err = taint(ctx, t.ca, m.Kind, m.AuthorityID)
			if err == nil {
				log.Info("applied a taint recorded through another server")
			}
		}
		if err != nil {
			log.Warn("applying a taint or revocation recorded through another server failed; retrying at the next refresh", "err", err)
		}
	}
}

func taint(ctx context.Context, m *rotation.Manager, k registry.AuthorityKind, id string) error {
	switch k {
	case registry.AuthorityX509:
		return m.TaintX509CA(ctx, id)
	case registry.AuthorityWIT:
		return m.TaintWITKey(ctx, id)
	}
	return m.TaintJWTKey(ctx, id)
}

func revoke(ctx context.Context, m *rotation.Manager, k registry.AuthorityKind, id string) error {
	switch k {
	case registry.AuthorityX509:
		return m.RevokeX509CA(ctx, id)
	case registry.AuthorityWIT:
		return m.RevokeWITKey(ctx, id)
	}
	return m.RevokeJWTKey(ctx, id)
}

// kindName is how messages name an authority kind.
func kindName(k registry.AuthorityKind) string {
	switch k {
	case registry.AuthorityX509:
		return "X.509 CA"
	case registry.AuthorityWIT:
		return "WIT key"
	}
	return "JWT key"
}

// errNoWITKeys answers an operation on the own CA's WIT keys on a server
// that signs no WIT-SVIDs, whose CA has none.
var errNoWITKeys = &opError{
	msg:  "server: this server signs no WIT-SVIDs, so its CA has no WIT key; WIT keys are kept only with WIT-SVIDs enabled (spiffe-server run -wit-svids)",
	kind: admin.ErrFailedPrecondition,
}

// witless reports whether k is the WIT kind and the own CA keeps no WIT
// keys.
func (a authorities) witless(k registry.AuthorityKind) bool {
	return k == registry.AuthorityWIT && a.t.ca.WITAuthority() == nil
}

// authorities operates the trust domain's CA for the admin API: prepare
// and activate on the own CA, taint and revoke on any server's authority
// (the own CA's at once, another server's by a mark in the store).
type authorities struct {
	t *View
}

var _ adminserver.AuthorityManager = authorities{}

// AuthorityManager returns the admin API's operations on the trust
// domain's authorities: prepare and activate on the own CA, taint and
// revoke on any server's authority (the own CA's at once, another
// server's by a mark in the store).
func (t *View) AuthorityManager() adminserver.AuthorityManager { return authorities{t} }

// Authorities implements adminserver.AuthorityManager. It reads the other
// servers' shares and the marks from the store, so that it shows what was
// just done through any server.
func (a authorities) Authorities(ctx context.Context) ([]admin.Authority, error) {
	v, err := a.view(ctx)
	if err != nil {
		return nil, err
	}
	var out []admin.Authority
	for _, k := range kinds {
		for _, i := range infos(a.t.ca, k) {
			out = append(out, v.authority(a.t.serverID, describe(k, i), true))
		}
		for _, p := range v.peers {
			for _, pa := range p.Authorities {
				if pa.Kind == k {
					out = append(out, v.authority(p.ServerID, pa, false))
				}
			}
		}
	}
	return out, nil
}

// view is the other servers' shares and the marks, as read from the store.
type view struct {
	peers []registry.ServerBundle
	marks map[markKey]registry.AuthorityMark
}

func (a authorities) view(ctx context.Context) (view, error) {
	now := a.t.now()
	all, err := a.t.stores.Shares.ListServerBundles(ctx, now)
	if err != nil {
		return view{}, fmt.Errorf("server: reading the servers' authorities: %w", err)
	}
	marks, err := a.t.stores.Shares.ListAuthorityMarks(ctx, now)
	if err != nil {
		return view{}, fmt.Errorf("server: reading the authority marks: %w", err)
	}
	v := view{marks: make(map[markKey]registry.AuthorityMark, len(marks))}
	for _, m := range marks {
		v.marks[markKey{m.ServerID, m.Kind, m.AuthorityID}] = m
	}
	v.peers = slices.DeleteFunc(all, func(b registry.ServerBundle) bool { return b.ServerID == a.t.serverID })
	slices.SortFunc(v.peers, func(x, y registry.ServerBundle) int { return cmp.Compare(x.ServerID, y.ServerID) })
	return v, nil
}

// authority describes the authority sa of server serverID with its marks.
func (v view) authority(serverID string, sa registry.ServerAuthority, local bool) admin.Authority {
	out := admin.Authority{
		Kind: sa.Kind, ID: sa.ID, ServerID: serverID, Local: local,
		State: sa.State, NotAfter: sa.NotAfter, Tainted: sa.Tainted,
	}
	if m, ok := v.marks[markKey{serverID, sa.Kind, sa.ID}]; ok && sa.State == registry.AuthorityOld {
		out.Tainted, out.Revoked = true, m.Revoked
		// A revoked authority its server still describes, or a taint it
		// has not applied, is pending.
		out.Pending = m.Revoked || !sa.Tainted
	}
	return out
}

// find returns the authority of kind k with the given ID: the own CA's,
// else the other server's that describes it.
func (a authorities) find(ctx context.Context, k registry.AuthorityKind, id string) (found registry.ServerAuthority, serverID string, v view, err error) {
	for _, i := range infos(a.t.ca, k) {
		if i.ID == id {
			return describe(k, i), a.t.serverID, v, nil
		}
	}
	if v, err = a.view(ctx); err != nil {
		return registry.ServerAuthority{}, "", v, err
	}
	for _, p := range v.peers {
		for _, pa := range p.Authorities {
			if pa.Kind == k && pa.ID == id {
				return pa, p.ServerID, v, nil
			}
		}
	}
	if a.witless(k) {
		return registry.ServerAuthority{}, "", v, notFound("server: no %s %q among the authorities of the trust domain's servers (this server signs no WIT-SVIDs and has no WIT key of its own)", kindName(k), id)
	}
	return registry.ServerAuthority{}, "", v, notFound("server: no %s %q among the authorities of the trust domain's servers", kindName(k), id)
}

// PrepareAuthority implements adminserver.AuthorityManager.
func (a authorities) PrepareAuthority(ctx context.Context, k registry.AuthorityKind) (admin.Authority, error) {
	var (
		info rotation.AuthorityInfo
		err  error
	)
	switch {
	case a.witless(k):
		return admin.Authority{}, errNoWITKeys
	case k == registry.AuthorityX509:
		info, err = a.t.ca.PrepareX509CA(ctx)
	case k == registry.AuthorityWIT:
		info, err = a.t.ca.PrepareWITKey(ctx)
	default:
		info, err = a.t.ca.PrepareJWTKey(ctx)
	}
	if errors.Is(err, rotation.ErrTooManyAuthorities) {
		return admin.Authority{}, &opError{msg: "server: " + err.Error() + "; revoke an old one first", kind: admin.ErrFailedPrecondition, cause: err}
	}
	if err != nil {
		return admin.Authority{}, fmt.Errorf("server: preparing a %s: %w", kindName(k), err)
	}
	a.published(ctx)
	return a.local(describe(k, info)), nil
}

// ActivateAuthority implements adminserver.AuthorityManager. The check of id and
// the activation are two steps: a prepare made between them through the
// same server would be activated instead, which the answer shows.
func (a authorities) ActivateAuthority(ctx context.Context, k registry.AuthorityKind, id string) (admin.Authority, error) {
	if a.witless(k) {
		return admin.Authority{}, errNoWITKeys
	}
	if id != "" {
		i := slices.IndexFunc(infos(a.t.ca, k), func(i rotation.AuthorityInfo) bool { return i.ID == id })
		switch {
		case i < 0:
			return admin.Authority{}, notFound("server: no %s %q on this server", kindName(k), id)
		case infos(a.t.ca, k)[i].State != rotation.StatePrepared:
			return admin.Authority{}, failedPrecondition("server: this server's %s %s is %s, not prepared",
				kindName(k), id, infos(a.t.ca, k)[i].State)
		}
	}
	var err error
	switch k {
	case registry.AuthorityX509:
		err = a.t.ca.ActivateX509CA(ctx)
	case registry.AuthorityWIT:
		err = a.t.ca.ActivateWITKey(ctx)
	default:
		err = a.t.ca.ActivateJWTKey(ctx)
	}
	if errors.Is(err, rotation.ErrNoPrepared) {
		return admin.Authority{}, failedPrecondition("server: no prepared %s to activate on this server; prepare one first, and activate it once relying parties have the bundle holding it",
			kindName(k))
	}
	if err != nil {
		return admin.Authority{}, fmt.Errorf("server: activating the prepared %s: %w", kindName(k), err)
	}
	a.published(ctx)
	for _, i := range infos(a.t.ca, k) {
		if i.State == rotation.StateActive {
			return a.local(describe(k, i)), nil
		}
	}
	return admin.Authority{}, fmt.Errorf("server: no active %s after activation", kindName(k)) // not reached
}

// TaintAuthority implements adminserver.AuthorityManager. Only an old authority
// can be tainted, as ca/rotation allows: the active one must first be
// replaced (prepare, activate), and a prepared one signed nothing.
func (a authorities) TaintAuthority(ctx context.Context, k registry.AuthorityKind, id string) (admin.Authority, error) {
	sa, serverID, v, err := a.find(ctx, k, id)
	if err != nil {
		return admin.Authority{}, err
	}
	if sa.State != registry.AuthorityOld {
		return admin.Authority{}, a.wrongState("tainted", k, sa, serverID)
	}
	if serverID == a.t.serverID {
		if err := taint(ctx, a.t.ca, k, id); err != nil {
			return admin.Authority{}, a.failed("tainting", k, id, err)
		}
		sa.Tainted = true
		a.published(ctx)
		return a.local(sa), nil
	}
	return a.mark(ctx, v, sa, serverID, false)
}

// RevokeAuthority implements adminserver.AuthorityManager. The own CA's
// authority is revoked at once if it is not active (as ca/rotation
// allows); another server's only if it is old, since its state as
// published may lag behind (a prepared one may be active by now): revoke a
// prepared authority on its own server.
func (a authorities) RevokeAuthority(ctx context.Context, k registry.AuthorityKind, id string) (admin.Authority, error) {
	sa, serverID, v, err := a.find(ctx, k, id)
	if err != nil {
		return admin.Authority{}, err
	}
	if serverID == a.t.serverID {
		if sa.State == registry.AuthorityActive {
			return admin.Authority{}, a.wrongState("revoked", k, sa, serverID)
		}
		if err := revoke(ctx, a.t.ca, k, id); err != nil {
			return admin.Authority{}, a.failed("revoking", k, id, err)
		}
		a.published(ctx)
		out := a.local(sa)
		out.Revoked = true
		return out, nil
	}
	if sa.State != registry.AuthorityOld {
		return admin.Authority{}, a.wrongState("revoked", k, sa, serverID)
	}
	return a.mark(ctx, v, sa, serverID, true)
}

// mark records a taint or revocation of another server's old authority
// and refreshes the own view, so that this server honours it at once.
func (a authorities) mark(ctx context.Context, v view, sa registry.ServerAuthority, serverID string, revoked bool) (admin.Authority, error) {
	m, err := a.t.stores.Shares.PutAuthorityMark(ctx, registry.AuthorityMark{
		ServerID: serverID, Kind: sa.Kind, AuthorityID: sa.ID, Revoked: revoked, ExpiresAt: sa.NotAfter,
	})
	if err != nil {
		return admin.Authority{}, fmt.Errorf("server: recording the mark of %s %s: %w", kindName(sa.Kind), sa.ID, err)
	}
	a.published(ctx)
	v.marks[markKey{serverID, sa.Kind, sa.ID}] = m
	return v.authority(serverID, sa, false), nil
}

// publishWait bounds the refresh that publishes a change before the
// answer; the refresh loop publishes it anyway.
const publishWait = 10 * time.Second

// published refreshes the trust after a change, so that the change is
// published for the other servers and reaches this server's agents before
// the answer, even if the caller hangs up; a failure is retried by the
// refresh loop.
func (a authorities) published(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishWait)
	defer cancel()
	if err := a.t.Refresh(ctx); err != nil {
		a.t.log.Warn("refreshing the bundle after an authority change failed", "err", err)
	}
}

func (a authorities) local(sa registry.ServerAuthority) admin.Authority {
	return view{}.authority(a.t.serverID, sa, true)
}

func (a authorities) failed(doing string, k registry.AuthorityKind, id string, err error) error {
	switch {
	case errors.Is(err, rotation.ErrNotFound):
		return notFound("server: no %s %q on this server", kindName(k), id)
	case errors.Is(err, rotation.ErrWrongState):
		return &opError{msg: "server: " + err.Error(), kind: admin.ErrFailedPrecondition, cause: err}
	}
	return fmt.Errorf("server: %s %s %s: %w", doing, kindName(k), id, err)
}

// wrongState explains why the authority cannot be tainted or revoked, and
// what to do instead.
func (a authorities) wrongState(done string, k registry.AuthorityKind, sa registry.ServerAuthority, serverID string) error {
	what := fmt.Sprintf("this server's %s %s is %s", kindName(k), sa.ID, sa.State)
	if serverID != a.t.serverID {
		what = fmt.Sprintf("%s %s of server %s is %s", kindName(k), sa.ID, serverID, sa.State)
	}
	var hint string
	switch {
	case sa.State == registry.AuthorityActive && done == "tainted":
		hint = fmt.Sprintf("the active authority cannot be tainted; on its server, prepare and activate another (authority %s prepare, then activate), then taint this one", k)
	case sa.State == registry.AuthorityActive:
		hint = fmt.Sprintf("the active authority cannot be revoked; on its server, prepare and activate another (authority %s prepare, then activate), taint this one, and revoke it once what it signed has been replaced", k)
	case done == "tainted":
		hint = "a prepared authority signed nothing and cannot be tainted; activate it, or prepare another in its place"
	default:
		hint = "through another server only an old authority can be revoked, as its state may have changed since it was published; revoke it on its own server"
	}
	return failedPrecondition("server: %s: %s", what, hint)
}

// opError is an error of the authority operations whose message says it
// all; it matches its kind (registry.ErrNotFound or
// admin.ErrFailedPrecondition) for errors.Is, without the kind's text.
type opError struct {
	msg   string
	kind  error
	cause error
}

func (e *opError) Error() string        { return e.msg }
func (e *opError) Is(target error) bool { return target == e.kind }
func (e *opError) Unwrap() error        { return e.cause }

func notFound(format string, args ...any) error {
	return &opError{msg: fmt.Sprintf(format, args...), kind: registry.ErrNotFound}
}

func failedPrecondition(format string, args ...any) error {
	return &opError{msg: fmt.Sprintf(format, args...), kind: admin.ErrFailedPrecondition}
}
