package rotation

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRotationCycle drives the manager over four CA lifetimes, an hour at a
// time, and checks the rotation rules at every step.
func TestRotationCycle(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, Config{Now: clk.Now})
	updates, unsubscribe := m.Subscribe()
	defer unsubscribe()

	// A new trust domain starts with one active CA and key, in the bundle.
	require.Equal(t, map[State]int{StateActive: 1}, countStates(m.X509CAs()))
	require.Equal(t, map[State]int{StateActive: 1}, countStates(m.JWTKeys()))
	require.Equal(t, uint64(1), sequence(t, m))
	require.Len(t, m.Bundle().X509Authorities(), 1)
	require.Len(t, m.Bundle().JWTAuthorities(), 1)
	hint, ok := m.Bundle().RefreshHint()
	require.True(t, ok)
	assert.Equal(t, DefaultRefreshHint, hint)

	type issued struct {
		chain  []*x509.Certificate
		signer string // ID of the CA that signed it
	}
	var svids []issued
	type token struct {
		kid string
		exp time.Time
	}
	var tokens []token

	prevSeq := sequence(t, m)
	prevBundle := m.Bundle()
	prevActive := m.X509Authority()
	activations, prepares, drops := 0, 0, 0
	for hour := 1; hour <= 4*24; hour++ {
		now := clk.Add(time.Hour)
		before := m.X509CAs()
		require.NoError(t, m.Rotate(t.Context()))
		after := m.X509CAs()

		// Exactly one active authority of each kind, at most one prepared.
		for _, infos := range [][]AuthorityInfo{after, m.JWTKeys()} {
			c := countStates(infos)
			require.Equal(t, 1, c[StateActive], "hour %d", hour)
			require.LessOrEqual(t, c[StatePrepared], 1, "hour %d", hour)
			for _, i := range infos {
				require.True(t, now.Before(i.NotAfter), "hour %d: expired %s kept", hour, i.State)
			}
		}
		// Every CA (prepared, active, old) is in the bundle, and nothing else.
		bundle := m.Bundle()
		require.Len(t, bundle.X509Authorities(), len(after), "hour %d", hour)
		for _, i := range after {
			require.True(t, bundle.HasX509Authority(i.Certificate))
		}
		require.Len(t, bundle.JWTAuthorities(), len(m.JWTKeys()))
		for _, i := range m.JWTKeys() {
			require.True(t, bundle.HasJWTAuthority(i.ID))
		}
		// Bundle rule 8: the sequence changes exactly when the content does.
		seq := sequence(t, m)
		if sameKeys(prevBundle, bundle) {
			require.Equal(t, prevSeq, seq, "hour %d", hour)
		} else {
			require.Equal(t, prevSeq+1, seq, "hour %d", hour)
			require.True(t, drain(updates), "hour %d: bundle change not notified", hour)
		}
		if m.X509Authority() != prevActive {
			activations++
			// The new active CA was published before it became active.
			newActive := m.X509Authority().Certificate()
			require.True(t, prevBundle.HasX509Authority(newActive), "hour %d: activated an unpublished CA", hour)
		}
		if c := countStates(after); c[StatePrepared] == 1 && countStates(before)[StatePrepared] == 0 {
			prepares++
		}
		for _, b := range before {
			gone := true
			for _, a := range after {
				gone = gone && a.ID != b.ID
			}
			if gone {
				drops++
				require.False(t, now.Before(b.NotAfter), "hour %d: CA dropped before it expired", hour)
			}
		}
		prevSeq, prevBundle, prevActive = seq, bundle, m.X509Authority()

		// SVIDs minted by any CA, before or after rotations, verify against
		// the current bundle until they expire (X509 rules 20-21).
		chain := mintSVID(t, m, 0)
		caInfo, _ := findState(after, StateActive)
		require.False(t, chain[0].NotAfter.After(caInfo.NotAfter), "SVID outlives its CA")
		svids = append(svids, issued{chain: chain, signer: caInfo.ID})
		for i, s := range svids {
			if now.Before(s.chain[0].NotAfter) {
				require.NoError(t, verifyAt(m, s.chain, now), "hour %d: SVID %d from CA %s", hour, i, s.signer)
			}
		}
		tok, err := m.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: workload, Audience: []string{"db"}})
		require.NoError(t, err)
		tokens = append(tokens, token{kid: tokenKeyID(t, tok), exp: now.Add(5 * time.Minute)})
		for _, tk := range tokens {
			if now.Before(tk.exp) {
				require.True(t, bundle.HasJWTAuthority(tk.kid))
			}
		}
	}
	// About one rotation a day (activation at 5/6 of life, the next CA being
	// prepared at half life), each CA dropped after it expires.
	assert.GreaterOrEqual(t, activations, 4)
	assert.GreaterOrEqual(t, prepares, 4)
	assert.GreaterOrEqual(t, drops, 3)
	assert.Greater(t, prevSeq, uint64(8))
}

// TestRotationThresholds checks the exact moments of the state changes for
// the default fractions.
func TestRotationThresholds(t *testing.T) {
	clk := newClock(t0)
	// The JWT key lives long, so that only the X.509 CA rotates here.
	m := newManager(t, Config{Now: clk.Now, CATTL: 6 * time.Hour, JWTKeyTTL: 100 * time.Hour})
	first := m.X509CAs()[0]
	life := first.NotAfter.Sub(first.NotBefore)
	prepareAt := first.NotBefore.Add(life / 2)
	activateAt := first.NotBefore.Add(life * 5 / 6)
	assert.Equal(t, prepareAt, m.NextRotation())

	clk.Set(prepareAt.Add(-time.Second))
	require.NoError(t, m.Rotate(t.Context()))
	require.Len(t, m.X509CAs(), 1)

	clk.Set(prepareAt)
	require.NoError(t, m.Rotate(t.Context()))
	require.Equal(t, map[State]int{StateActive: 1, StatePrepared: 1}, countStates(m.X509CAs()))
	require.Equal(t, uint64(2), sequence(t, m), "prepared keys are published at once")
	assert.WithinDuration(t, activateAt, m.NextRotation(), time.Second)

	clk.Set(activateAt.Add(-time.Second))
	require.NoError(t, m.Rotate(t.Context()))
	require.Equal(t, first.ID, mustActive(t, m.X509CAs()).ID)

	clk.Set(activateAt.Add(time.Second))
	require.NoError(t, m.Rotate(t.Context()))
	infos := m.X509CAs()
	require.Equal(t, map[State]int{StateActive: 1, StateOld: 1}, countStates(infos))
	require.NotEqual(t, first.ID, mustActive(t, infos).ID)
	require.Equal(t, uint64(2), sequence(t, m), "activation does not change the bundle")
	// Next: the successor's own prepare threshold, just before the old CA
	// expires.
	second := mustActive(t, infos)
	secondPrepare := second.NotBefore.Add(second.NotAfter.Sub(second.NotBefore) / 2)
	require.True(t, secondPrepare.Before(first.NotAfter))
	assert.Equal(t, secondPrepare, m.NextRotation())

	clk.Set(first.NotAfter.Add(-time.Second))
	require.NoError(t, m.Rotate(t.Context()))
	require.Equal(t, map[State]int{StateActive: 1, StateOld: 1, StatePrepared: 1}, countStates(m.X509CAs()))
	require.Equal(t, uint64(3), sequence(t, m))
	assert.Equal(t, first.NotAfter, m.NextRotation())
	clk.Set(first.NotAfter)
	require.NoError(t, m.Rotate(t.Context()))
	require.Equal(t, map[State]int{StateActive: 1, StatePrepared: 1}, countStates(m.X509CAs()), "the old CA leaves at its NotAfter")
	require.Equal(t, uint64(4), sequence(t, m))
	// Its key is destroyed (keymanager.Memory is a ca.KeyDestroyer).
	_, err := m.keys.Key(t.Context(), first.KeyID)
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
}

// TestActivationReserve: with a CA TTL close to the SVID TTL, activation
// comes early enough that the active CA can still grant full SVID lifetimes.
func TestActivationReserve(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, Config{Now: clk.Now, CATTL: 3 * time.Hour, X509SVIDTTL: time.Hour})
	first := m.X509CAs()[0]
	// 5/6 of 3h is 2.5h, but only 30 minutes would remain: activate at
	// NotAfter - 1h instead.
	clk.Set(first.NotAfter.Add(-time.Hour))
	require.NoError(t, m.Rotate(t.Context()))
	require.NotEqual(t, first.ID, mustActive(t, m.X509CAs()).ID)
	chain := mintSVID(t, m, 0)
	assert.Equal(t, time.Hour+10*time.Second, chain[0].NotAfter.Sub(chain[0].NotBefore))
}

// TestExpiredWhileDown: a manager started long after every authority
// expired activates new ones at once and drops the old ones.
func TestExpiredWhileDown(t *testing.T) {
	clk := newClock(t0)
	j := new(memoryJournal)
	keys := keymanager.NewMemory()
	m := newManager(t, Config{Now: clk.Now, Journal: j, KeyManager: keys})
	oldID := m.X509CAs()[0].ID
	seq := sequence(t, m)

	clk.Add(72 * time.Hour)
	m2 := newManager(t, Config{Now: clk.Now, Journal: j, KeyManager: keys})
	infos := m2.X509CAs()
	require.Len(t, infos, 1)
	require.NotEqual(t, oldID, infos[0].ID)
	require.Equal(t, StateActive, infos[0].State)
	require.Equal(t, seq+1, sequence(t, m2))
	require.NoError(t, verifyAt(m2, mintSVID(t, m2, 0), clk.Now()))
}

// TestSVIDLifetimeCapped: an SVID never outlives the CA that signs it, even
// when a longer TTL is asked for.
func TestSVIDLifetimeCapped(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, Config{Now: clk.Now})
	caNotAfter := m.X509Authority().Certificate().NotAfter
	clk.Add(20 * time.Hour)
	chain := mintSVID(t, m, 48*time.Hour)
	assert.Equal(t, caNotAfter, chain[0].NotAfter)

	token, err := m.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: workload, Audience: []string{"a"}, TTL: 48 * time.Hour})
	require.NoError(t, err)
	require.NotEmpty(t, token)

	// Default TTLs come from the config.
	m2 := newManager(t, Config{Now: clk.Now, X509SVIDTTL: 10 * time.Minute})
	chain = mintSVID(t, m2, 0)
	assert.Equal(t, 10*time.Minute+10*time.Second, chain[0].NotAfter.Sub(chain[0].NotBefore))
	_, err = m2.SignX509SVID(t.Context(), ca.X509SVIDParams{ID: workload})
	require.Error(t, err)
	_, err = m2.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: workload})
	require.Error(t, err)
}

func mustActive(t testing.TB, infos []AuthorityInfo) AuthorityInfo {
	t.Helper()
	i, ok := findState(infos, StateActive)
	require.True(t, ok)
	return i
}
