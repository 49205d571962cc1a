package datadir

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
	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// newCA returns a trust domain, an agent ID of it and its CA.
func newCA(t *testing.T) (spiffeid.TrustDomain, spiffeid.ID, *rotation.Manager) {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	return td, spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/x"), m
}

// agentSVID returns a key and an agent SVID for it, signed by m.
func agentSVID(t *testing.T, m *rotation.Manager, id spiffeid.ID) (crypto.Signer, *nodeapi.AgentSVID) {
	t.Helper()
	key := testca.NewECKey(t)
	chain, err := m.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	require.NoError(t, err)
	return key, &nodeapi.AgentSVID{ID: id, Certificates: chain, Bundle: m.Bundle()}
}

// pemKeys loads keys as the default KeyStore keeps them: PKCS #8 PEM.
type pemKeys struct{}

func (pemKeys) LoadKey(_ context.Context, data []byte) (crypto.Signer, error) {
	return pemutil.ParsePrivateKey(data)
}

// save is SaveState with the default KeyStore.
func save(t *testing.T, dir string, key crypto.Signer, svid *nodeapi.AgentSVID) error {
	t.Helper()
	data, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	return SaveState(dir, softwareFiles, data, svid)
}

// load is LoadState with the default KeyStore.
func load(dir string, td spiffeid.TrustDomain) (crypto.Signer, *nodeapi.AgentSVID, error) {
	key, _, svid, err := LoadState(context.Background(), dir, td, pemKeys{}, softwareFiles)
	return key, svid, err
}

// softwareFiles are the key files of the default KeyStore.
var softwareFiles = KeyFiles{Key: KeyFile, Next: "agent-key.next.pem"}

// Property: whenever the agent dies while it saves a renewed SVID, what it
// saved loads as a whole, the old SVID with its key or the new one with
// its own: an agent whose join token is spent can start again. The crash
// points are the steps of SaveState, replayed one by one.
func TestSaveStateSurvivesACrashAtAnyPoint(t *testing.T) {
	td, id, m := newCA(t)
	oldKey, oldSVID := agentSVID(t, m, id)
	newKey, newSVID := agentSVID(t, m, id)
	newKeyPEM, err := pemutil.EncodePKCS8PrivateKey(newKey)
	require.NoError(t, err)
	newBundle, err := newSVID.Bundle.Marshal()
	require.NoError(t, err)
	steps := []func(dir string) error{
		func(dir string) error {
			return atomicfile.Write(filepath.Join(dir, softwareFiles.Next), newKeyPEM, 0o600)
		},
		func(dir string) error { return atomicfile.Write(filepath.Join(dir, BundleFile), newBundle, 0o644) },
		func(dir string) error {
			return atomicfile.Write(filepath.Join(dir, SVIDFile), pemutil.EncodeCertificates(newSVID.Certificates), 0o644)
		},
		func(dir string) error {
			return os.Rename(filepath.Join(dir, softwareFiles.Next), filepath.Join(dir, softwareFiles.Key))
		},
	}
	for done := range len(steps) + 1 {
		dir := t.TempDir()
		require.NoError(t, save(t, dir, oldKey, oldSVID))
		for _, step := range steps[:done] {
			require.NoError(t, step(dir))
		}
		key, svid, err := load(dir, td)
		require.NoError(t, err, "killed after %d of %d steps", done, len(steps))
		want, wantKey := oldSVID, oldKey
		if done >= 3 { // the new SVID is written
			want, wantKey = newSVID, newKey
		}
		assert.Equal(t, want.Certificates[0].Raw, svid.Certificates[0].Raw, "after %d steps", done)
		assert.True(t, publickey.Equal(wantKey.Public(), key.Public()), "after %d steps, the SVID's own key", done)
	}

	// SaveState itself goes through every step and leaves no key aside.
	dir := t.TempDir()
	require.NoError(t, save(t, dir, oldKey, oldSVID))
	require.NoError(t, save(t, dir, newKey, newSVID))
	_, err = os.Stat(filepath.Join(dir, softwareFiles.Next))
	assert.ErrorIs(t, err, os.ErrNotExist)
	key, svid, err := load(dir, td)
	require.NoError(t, err)
	assert.Equal(t, newSVID.Certificates[0].Raw, svid.Certificates[0].Raw)
	assert.True(t, publickey.Equal(newKey.Public(), key.Public()))

	// A key aside that is not the SVID's does not make a mismatch load.
	dir = t.TempDir()
	require.NoError(t, save(t, dir, oldKey, oldSVID))
	require.NoError(t, steps[0](dir))
	require.NoError(t, atomicfile.Write(filepath.Join(dir, SVIDFile), pemutil.EncodeCertificates(newSVID.Certificates), 0o644))
	otherPEM, err := pemutil.EncodePKCS8PrivateKey(testca.NewECKey(t))
	require.NoError(t, err)
	require.NoError(t, atomicfile.Write(filepath.Join(dir, softwareFiles.Next), otherPEM, 0o600))
	_, _, err = load(dir, td)
	require.ErrorContains(t, err, "does not match")
}
