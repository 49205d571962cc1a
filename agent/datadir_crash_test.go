package agent

import (
	"context"
	"crypto"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// agentSVID returns a key and an agent SVID for it, signed by m.
func agentSVID(t *testing.T, m *rotation.Manager, id spiffeid.ID) (crypto.Signer, *nodeapi.AgentSVID) {
	t.Helper()
	key := testca.NewECKey(t)
	chain, err := m.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	require.NoError(t, err)
	return key, &nodeapi.AgentSVID{ID: id, Certificates: chain, Bundle: m.Bundle()}
}

// Property: whenever the agent dies while it saves a renewed SVID, what it
// saved loads as a whole, the old SVID with its key or the new one with
// its own: an agent whose join token is spent can start again. The crash
// points are the steps of saveState, replayed one by one.
func TestSaveStateSurvivesACrashAtAnyPoint(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/x")
	m, err := rotation.New(context.Background(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	oldKey, oldSVID := agentSVID(t, m, id)
	newKey, newSVID := agentSVID(t, m, id)
	newKeyPEM, err := pemutil.EncodePKCS8PrivateKey(newKey)
	require.NoError(t, err)
	newBundle, err := newSVID.Bundle.Marshal()
	require.NoError(t, err)
	steps := []func(dir string) error{
		func(dir string) error { return atomicfile.Write(filepath.Join(dir, nextKey), newKeyPEM, 0o600) },
		func(dir string) error { return atomicfile.Write(filepath.Join(dir, bundleFile), newBundle, 0o644) },
		func(dir string) error {
			return atomicfile.Write(filepath.Join(dir, svidFile), pemutil.EncodeCertificates(newSVID.Certificates), 0o644)
		},
		func(dir string) error { return os.Rename(filepath.Join(dir, nextKey), filepath.Join(dir, keyFile)) },
	}
	for done := range len(steps) + 1 {
		dir := t.TempDir()
		require.NoError(t, saveState(dir, oldKey, oldSVID))
		for _, step := range steps[:done] {
			require.NoError(t, step(dir))
		}
		key, svid, err := loadState(dir, td)
		require.NoError(t, err, "killed after %d of %d steps", done, len(steps))
		want, wantKey := oldSVID, oldKey
		if done >= 3 { // the new SVID is written
			want, wantKey = newSVID, newKey
		}
		assert.Equal(t, want.Certificates[0].Raw, svid.Certificates[0].Raw, "after %d steps", done)
		assert.True(t, samePublicKey(wantKey.Public(), key.Public()), "after %d steps, the SVID's own key", done)
	}

	// saveState itself goes through every step and leaves no key aside.
	dir := t.TempDir()
	require.NoError(t, saveState(dir, oldKey, oldSVID))
	require.NoError(t, saveState(dir, newKey, newSVID))
	_, err = os.Stat(filepath.Join(dir, nextKey))
	assert.ErrorIs(t, err, os.ErrNotExist)
	key, svid, err := loadState(dir, td)
	require.NoError(t, err)
	assert.Equal(t, newSVID.Certificates[0].Raw, svid.Certificates[0].Raw)
	assert.True(t, samePublicKey(newKey.Public(), key.Public()))

	// A key aside that is not the SVID's does not make a mismatch load.
	dir = t.TempDir()
	require.NoError(t, saveState(dir, oldKey, oldSVID))
	require.NoError(t, steps[0](dir))
	require.NoError(t, atomicfile.Write(filepath.Join(dir, svidFile), pemutil.EncodeCertificates(newSVID.Certificates), 0o644))
	otherPEM, err := pemutil.EncodePKCS8PrivateKey(testca.NewECKey(t))
	require.NoError(t, err)
	require.NoError(t, atomicfile.Write(filepath.Join(dir, nextKey), otherPEM, 0o600))
	_, _, err = loadState(dir, td)
	require.ErrorContains(t, err, "does not match")
}
