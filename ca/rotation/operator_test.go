package rotation

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestForcedX509Rotation(t *testing.T) {
	clk := newClock(t0)
	keys := keymanager.NewMemory()
	m := newManager(t, Config{Now: clk.Now, KeyManager: keys})
	updates, unsubscribe := m.Subscribe()
	defer unsubscribe()
	ctx := t.Context()
	first := mustActive(t, m.X509CAs())
	oldSVID := mintSVID(t, m, 0)

	require.ErrorIs(t, m.ActivateX509CA(ctx), ErrNoPrepared)

	prepared, err := m.PrepareX509CA(ctx)
	require.NoError(t, err)
	assert.Equal(t, StatePrepared, prepared.State)
	assert.True(t, m.Bundle().HasX509Authority(prepared.Certificate), "published at once")
	assert.Equal(t, uint64(2), sequence(t, m))
	assert.True(t, drain(updates))
	assert.Same(t, first.Certificate, m.X509Authority().Certificate(), "not active yet")

	// Preparing again replaces the prepared CA, which never signed anything.
	again, err := m.PrepareX509CA(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, prepared.ID, again.ID)
	assert.False(t, m.Bundle().HasX509Authority(prepared.Certificate))
	_, err = keys.Key(ctx, prepared.KeyID)
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	assert.Equal(t, uint64(3), sequence(t, m))
	drain(updates)

	require.NoError(t, m.ActivateX509CA(ctx))
	assert.Equal(t, again.ID, mustActive(t, m.X509CAs()).ID)
	assert.True(t, drain(updates), "activation is notified")
	assert.Equal(t, uint64(3), sequence(t, m))
	require.NoError(t, verifyAt(m, oldSVID, clk.Now()), "the old CA is still trusted")

	tests := []struct {
		name string
		id   string
		want error
	}{
		{"unknown", "00ff", ErrNotFound},
		{"active", again.ID, ErrWrongState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, m.TaintX509CA(ctx, tt.id), tt.want)
			require.ErrorIs(t, m.RevokeX509CA(ctx, tt.id), tt.want)
		})
	}

	require.Empty(t, m.TaintedX509CAs())
	require.NoError(t, m.TaintX509CA(ctx, first.ID))
	require.True(t, drain(updates), "taint is notified")
	tainted := m.TaintedX509CAs()
	require.Len(t, tainted, 1)
	assert.Equal(t, first.Certificate.Raw, tainted[0].Raw)
	require.NoError(t, m.TaintX509CA(ctx, first.ID), "tainting twice is a no-op")
	assert.False(t, drain(updates))
	assert.Equal(t, uint64(3), sequence(t, m), "taint does not change the bundle")

	// A prepared CA cannot be tainted: it signed nothing.
	next, err := m.PrepareX509CA(ctx)
	require.NoError(t, err)
	require.ErrorIs(t, m.TaintX509CA(ctx, next.ID), ErrWrongState)

	require.NoError(t, m.RevokeX509CA(ctx, first.ID))
	assert.False(t, m.Bundle().HasX509Authority(first.Certificate))
	assert.Equal(t, uint64(5), sequence(t, m))
	require.Error(t, verifyAt(m, oldSVID, clk.Now()), "SVIDs of a revoked CA stop verifying")
	_, err = keys.Key(ctx, first.KeyID)
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	require.ErrorIs(t, m.RevokeX509CA(ctx, first.ID), ErrNotFound)
	assert.Empty(t, m.TaintedX509CAs())

	// A prepared CA can be revoked.
	require.NoError(t, m.RevokeX509CA(ctx, next.ID))
	assert.Len(t, m.X509CAs(), 1)
}

func TestForcedJWTRotation(t *testing.T) {
	// Real time, so that jwtsvid.ParseAndValidate agrees with the manager.
	m := newManager(t, Config{})
	ctx := t.Context()
	first := mustActive(t, m.JWTKeys())
	sign := func() string {
		tok, err := m.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: workload, Audience: []string{"db"}})
		require.NoError(t, err)
		return tok
	}
	oldToken := sign()
	_, err := jwtsvid.ParseAndValidate(oldToken, m.Bundle(), []string{"db"})
	require.NoError(t, err)

	require.ErrorIs(t, m.ActivateJWTKey(ctx), ErrNoPrepared)
	prepared, err := m.PrepareJWTKey(ctx)
	require.NoError(t, err)
	assert.True(t, m.Bundle().HasJWTAuthority(prepared.ID))
	require.NoError(t, m.ActivateJWTKey(ctx))
	assert.Equal(t, prepared.ID, m.JWTAuthority().KeyID())
	newToken := sign()
	assert.Equal(t, prepared.ID, tokenKeyID(t, newToken))

	require.ErrorIs(t, m.TaintJWTKey(ctx, prepared.ID), ErrWrongState)
	require.ErrorIs(t, m.RevokeJWTKey(ctx, prepared.ID), ErrWrongState)
	require.ErrorIs(t, m.TaintJWTKey(ctx, "nope"), ErrNotFound)
	require.NoError(t, m.TaintJWTKey(ctx, first.ID))
	assert.Equal(t, []string{first.ID}, m.TaintedJWTKeyIDs())
	_, err = jwtsvid.ParseAndValidate(oldToken, m.Bundle(), []string{"db"})
	require.NoError(t, err, "tainted keys stay trusted")

	require.NoError(t, m.RevokeJWTKey(ctx, first.ID))
	_, err = jwtsvid.ParseAndValidate(oldToken, m.Bundle(), []string{"db"})
	require.Error(t, err, "revoked keys are not")
	_, err = jwtsvid.ParseAndValidate(newToken, m.Bundle(), []string{"db"})
	require.NoError(t, err)
	assert.Empty(t, m.TaintedJWTKeyIDs())
}

func TestTooManyAuthorities(t *testing.T) {
	clk := newClock(t0)
	m := newManager(t, Config{Now: clk.Now})
	ctx := t.Context()
	var err error
	for range maxAuthorities + 1 {
		if _, err = m.PrepareJWTKey(ctx); err != nil {
			break
		}
		require.NoError(t, m.ActivateJWTKey(ctx))
	}
	require.ErrorIs(t, err, ErrTooManyAuthorities)
	require.Len(t, m.JWTKeys(), maxAuthorities)
	// Once the old keys expire, rotation goes on.
	clk.Add(25 * time.Hour)
	require.NoError(t, m.Rotate(ctx))
	assert.LessOrEqual(t, len(m.JWTKeys()), 2)
}

func TestSubscribeUnsubscribe(t *testing.T) {
	m := newManager(t, Config{})
	a, unsubA := m.Subscribe()
	b, unsubB := m.Subscribe()
	unsubB()
	unsubB() // idempotent
	_, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	_, err = m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	assert.True(t, drain(a))
	assert.False(t, drain(a), "updates coalesce")
	assert.False(t, drain(b))
	unsubA()
}

func TestCanceledContext(t *testing.T) {
	m := newManager(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := m.PrepareX509CA(ctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = m.PrepareJWTKey(ctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = New(ctx, Config{TrustDomain: td})
	require.ErrorIs(t, err, context.Canceled)
}

func TestLogging(t *testing.T) {
	var buf bytes.Buffer
	m := newManager(t, Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	info, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	assert.Contains(t, buf.String(), `msg="authority prepared"`)
	assert.Contains(t, buf.String(), "id="+info.ID)
	assert.Contains(t, buf.String(), "key_id="+info.KeyID)
	assert.NotContains(t, buf.String(), "PRIVATE")
}
