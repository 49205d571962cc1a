package rotation

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// validateWIT checks token against bundle at now, as a validator would
// with its own clock: the signature by a WIT authority of the bundle
// named by its kid, and the expiry.
func validateWIT(token string, bundle *spiffebundle.Bundle, now time.Time) (*witClaims, error) {
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, err
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders["typ"]; typ != "wit+jwt" {
		return nil, fmt.Errorf("typ %v", typ)
	}
	key, ok := bundle.FindWITAuthority(jws.Signatures[0].Header.KeyID)
	if !ok {
		return nil, errors.New("no WIT authority with that kid")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, err
	}
	var c struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	out := &witClaims{ID: spiffeid.RequireFromString(c.Sub), Expiry: time.Unix(c.Exp, 0)}
	if !now.Before(out.Expiry) {
		return nil, errors.New("expired")
	}
	return out, nil
}

type witClaims struct {
	ID     spiffeid.ID
	Expiry time.Time
}

func signWIT(t *testing.T, m *Manager) string {
	t.Helper()
	token, err := m.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: workload, PublicKey: workloadKey(t).Public()})
	require.NoError(t, err)
	return token
}

// TestWITKeysRotate drives a manager with WIT keys over three key
// lifetimes: there is always one active WIT key, each is published before
// it signs and stays until its expiry, and every WIT-SVID it signed
// validates against the bundle for its whole life.
func TestWITKeysRotate(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, Config{Now: clk.Now, WITKeys: true, WITKeyTTL: 12 * time.Hour})

	require.Equal(t, map[State]int{StateActive: 1}, countStates(m.WITKeys()))
	b := m.Bundle()
	require.Len(t, b.WITAuthorities(), 1)
	active, _ := findState(m.WITKeys(), StateActive)
	_, ok := b.FindWITAuthority(active.ID)
	require.True(t, ok, "the active WIT key is in the bundle with use wit-svid")
	assert.False(t, b.HasJWTAuthority(active.ID), "a WIT key is not a JWT key")
	require.NotNil(t, m.WITAuthority())
	assert.Equal(t, active.ID, m.WITAuthority().KeyID())

	type issued struct {
		token string
		exp   time.Time
	}
	var tokens []issued
	activations := 0
	for hour := 1; hour <= 36; hour++ {
		now := clk.Add(time.Hour)
		before, _ := findState(m.WITKeys(), StateActive)
		require.NoError(t, m.Rotate(t.Context()))
		infos := m.WITKeys()
		c := countStates(infos)
		require.Equal(t, 1, c[StateActive], "hour %d", hour)
		require.LessOrEqual(t, c[StatePrepared], 1, "hour %d", hour)
		after, _ := findState(infos, StateActive)
		if after.ID != before.ID {
			activations++
		}
		// Every key of the manager, prepared ones included, is published.
		bundle := m.Bundle()
		require.Len(t, bundle.WITAuthorities(), len(infos), "hour %d", hour)
		for _, i := range infos {
			require.True(t, bundle.HasWITAuthority(i.ID), "hour %d: %s key %s missing", hour, i.State, i.ID)
		}

		token := signWIT(t, m)
		assert.Equal(t, after.ID, tokenKeyID(t, token), "hour %d: signed by the active key", hour)
		svid, err := validateWIT(token, bundle, now)
		require.NoError(t, err, "hour %d", hour)
		assert.Equal(t, workload, svid.ID)
		tokens = append(tokens, issued{token, svid.Expiry})

		// What an earlier key signed validates until it expires.
		for _, old := range tokens {
			if now.Before(old.exp) {
				_, err := validateWIT(old.token, bundle, now)
				require.NoError(t, err, "hour %d", hour)
			}
		}
	}
	assert.GreaterOrEqual(t, activations, 2)
}

func TestWITKeysJournalRestart(t *testing.T) {
	clk := newClock(t0)
	keys := keymanager.NewMemory()
	j := new(memoryJournal)
	cfg := Config{Now: clk.Now, WITKeys: true, KeyManager: keys, Journal: j}
	m := newManager(t, cfg)
	token := signWIT(t, m)

	again := newManager(t, cfg)
	assert.Equal(t, m.WITKeys(), again.WITKeys())
	assert.True(t, m.Bundle().Equal(again.Bundle()))
	assert.Equal(t, m.WITAuthority().KeyID(), tokenKeyID(t, signWIT(t, again)))
	_, err := validateWIT(token, again.Bundle(), clk.Now())
	require.NoError(t, err)

	// Started without WIT keys over the same journal: the key stops
	// signing but stays in the bundle, so that its WIT-SVIDs validate
	// until it expires; then it is dropped.
	cfg.WITKeys = false
	off := newManager(t, cfg)
	assert.Nil(t, off.WITAuthority())
	_, err = off.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: workload, PublicKey: workloadKey(t).Public()})
	require.ErrorIs(t, err, ErrNoWITKey)
	require.Equal(t, map[State]int{StateOld: 1}, countStates(off.WITKeys()))
	_, err = validateWIT(token, off.Bundle(), clk.Now())
	require.NoError(t, err)
	_, err = off.PrepareWITKey(t.Context())
	require.ErrorIs(t, err, ErrWrongState)
	next := off.NextRotation()
	require.True(t, next.After(clk.Now()), "a retired key schedules no rotation before its expiry")
	clk.Set(off.WITKeys()[0].NotAfter)
	require.NoError(t, off.Rotate(t.Context()))
	assert.Empty(t, off.WITKeys())
	assert.Empty(t, off.Bundle().WITAuthorities())
}

func TestWITKeysOffByDefault(t *testing.T) {
	m := newManager(t, Config{})
	assert.Empty(t, m.WITKeys())
	assert.Empty(t, m.Bundle().WITAuthorities())
	assert.Nil(t, m.WITAuthority())
	doc, err := encodeJournal(td, m.snap.Load().state)
	require.NoError(t, err)
	assert.NotContains(t, string(doc), "wit_keys", "a journal without WIT keys reads as before")
}

func TestWITKeyOperatorActions(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, Config{Now: clk.Now, WITKeys: true})
	first, _ := findState(m.WITKeys(), StateActive)

	require.ErrorIs(t, m.ActivateWITKey(t.Context()), ErrNoPrepared)
	prepared, err := m.PrepareWITKey(t.Context())
	require.NoError(t, err)
	assert.Equal(t, StatePrepared, prepared.State)
	assert.True(t, m.Bundle().HasWITAuthority(prepared.ID), "published before it signs")
	assert.Equal(t, first.ID, tokenKeyID(t, signWIT(t, m)))

	require.ErrorIs(t, m.RevokeWITKey(t.Context(), first.ID), ErrWrongState, "the active key cannot be revoked")
	require.ErrorIs(t, m.TaintWITKey(t.Context(), first.ID), ErrWrongState, "only an old key can be tainted")
	require.NoError(t, m.ActivateWITKey(t.Context()))
	assert.Equal(t, prepared.ID, tokenKeyID(t, signWIT(t, m)))

	assert.Empty(t, m.TaintedWITKeyIDs())
	require.NoError(t, m.TaintWITKey(t.Context(), first.ID))
	old, _ := findState(m.WITKeys(), StateOld)
	assert.True(t, old.Tainted)
	assert.Equal(t, []string{first.ID}, m.TaintedWITKeyIDs())
	assert.Empty(t, m.TaintedJWTKeyIDs(), "a WIT key's taint is not a JWT key's")
	require.ErrorIs(t, m.TaintWITKey(t.Context(), "nope"), ErrNotFound)
	require.NoError(t, m.RevokeWITKey(t.Context(), first.ID))
	assert.False(t, m.Bundle().HasWITAuthority(first.ID), "a revoked key leaves the bundle at once")
	assert.Empty(t, m.TaintedWITKeyIDs(), "a revoked key is out of the bundle, no longer tainted")
}

func TestWITKeysConfig(t *testing.T) {
	for _, cfg := range []Config{
		{WITKeys: true, CATTL: time.Hour, WITSVIDTTL: time.Hour, X509SVIDTTL: time.Minute, JWTSVIDTTL: time.Minute},
		{WITKeys: true, WITSVIDTTL: -time.Second},
		{WITKeys: true, WITKeyAlgorithm: "ed25519"},
	} {
		cfg.TrustDomain = td
		_, err := New(t.Context(), cfg)
		require.Error(t, err, "%+v", cfg)
	}
}

// TestWITJournalRejects tries to load journals that break the WIT key
// rules: a kid shared by a JWT key and a WIT key (WIT rule 16), two active
// WIT keys, an unreadable key.
func TestWITJournalRejects(t *testing.T) {
	m := newManager(t, Config{WITKeys: true})
	good := m.snap.Load().state

	dupKid := good.clone()
	dupKid.slots[kindWIT][0].kid = dupKid.slots[kindJWT][0].kid
	twoActive := good.clone()
	extra := *twoActive.slots[kindWIT][0]
	extra.keyID, extra.kid = "wit-other", "other-kid"
	twoActive.slots[kindWIT] = append(twoActive.slots[kindWIT], &extra)

	for name, st := range map[string]*state{"shared kid": dupKid, "two active": twoActive} {
		doc, err := encodeJournal(td, st)
		require.NoError(t, err)
		_, err = decodeJournal(td, doc)
		require.ErrorIs(t, err, ErrCorruptJournal, name)
	}
	doc, err := encodeJournal(td, good)
	require.NoError(t, err)
	_, err = decodeJournal(td, doc)
	require.NoError(t, err)

	// A journal naming a WIT key the key manager does not have.
	j := new(memoryJournal)
	require.NoError(t, j.Store(t.Context(), doc))
	_, err = New(t.Context(), Config{TrustDomain: td, WITKeys: true, Journal: j, KeyManager: keymanager.NewMemory()})
	require.True(t, errors.Is(err, ca.ErrKeyNotFound), "%v", err)
}
