package keymanager

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"os"
	"path/filepath"
	"testing"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// samePublicKey reports whether a and b are the same public key.
func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// keyManagerContract is what every ca.KeyManager must do.
func keyManagerContract(t *testing.T, km interface {
	ca.KeyManager
	ca.KeyDestroyer
}) {
	ctx := t.Context()
	key, err := km.GenerateKey(ctx, "x509-a", ca.ECP256)
	require.NoError(t, err)
	got, err := km.Key(ctx, "x509-a")
	require.NoError(t, err)
	assert.True(t, samePublicKey(key.Public(), got.Public()))

	_, err = km.GenerateKey(ctx, "x509-a", ca.ECP256)
	require.ErrorIs(t, err, ca.ErrKeyExists, "a stored key is never replaced")
	_, err = km.Key(ctx, "missing")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	require.ErrorIs(t, km.DestroyKey(ctx, "missing"), ca.ErrKeyNotFound)

	for _, id := range []string{"", "../escape", ".hidden", "a/b", "sp ace", string(make([]byte, ca.MaxKeyIDLen+1))} {
		_, err := km.GenerateKey(ctx, id, ca.ECP256)
		require.Error(t, err, "%q", id)
	}
	_, err = km.GenerateKey(ctx, "x509-b", "dsa-1024")
	require.ErrorContains(t, err, "unsupported key algorithm")

	require.NoError(t, km.DestroyKey(ctx, "x509-a"))
	_, err = km.Key(ctx, "x509-a")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = km.GenerateKey(canceled, "x509-c", ca.ECP256)
	require.ErrorIs(t, err, context.Canceled)
	_, err = km.Key(canceled, "x509-c")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, km.DestroyKey(canceled, "x509-c"), context.Canceled)
}

func TestMemory(t *testing.T) {
	keyManagerContract(t, NewMemory())
	keyManagerContract(t, new(Memory)) // the zero value is ready to use
}

func TestDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	km, err := NewDisk(dir)
	require.NoError(t, err)
	keyManagerContract(t, km)

	ctx := t.Context()
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	key, err := km.GenerateKey(ctx, "jwt-1", ca.ECP384)
	require.NoError(t, err)
	path := filepath.Join(dir, "jwt-1.key")
	info, err = os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(data), "-----BEGIN PRIVATE KEY-----", "PKCS#8 PEM")

	// A second instance reads the file.
	km2, err := NewDisk(dir)
	require.NoError(t, err)
	got, err := km2.Key(ctx, "jwt-1")
	require.NoError(t, err)
	assert.True(t, samePublicKey(key.Public(), got.Public()))
	assert.Equal(t, elliptic.P384(), got.Public().(*ecdsa.PublicKey).Curve)

	// A key file that others can read is refused.
	require.NoError(t, os.Chmod(path, 0o644))
	km3, err := NewDisk(dir)
	require.NoError(t, err)
	_, err = km3.Key(ctx, "jwt-1")
	require.ErrorContains(t, err, "permissions 0644")

	// So is garbage.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk.key"), []byte("junk"), 0o600))
	_, err = km3.Key(ctx, "junk")
	require.ErrorContains(t, err, "cannot parse key")

	// And a shared directory.
	shared := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(shared, 0o755))
	require.NoError(t, os.Chmod(shared, 0o755))
	_, err = NewDisk(shared)
	require.ErrorContains(t, err, "permissions")
	_, err = NewDisk("")
	require.Error(t, err)
	_, err = NewDisk(path)
	require.Error(t, err, "a file, not a directory")
}

// TestDiskInvalidIDs: an ID that is not a plain file name never reaches the
// file system, whichever method gets it.
func TestDiskInvalidIDs(t *testing.T) {
	dir := t.TempDir()
	km, err := NewDisk(filepath.Join(dir, "keys"))
	require.NoError(t, err)
	secret := filepath.Join(dir, "secret.key")
	require.NoError(t, os.WriteFile(secret, []byte("x"), 0o600))
	for _, id := range []string{"../secret", "", ".tmp"} {
		_, err := km.Key(t.Context(), id)
		require.ErrorContains(t, err, "keymanager: ca: invalid key ID")
		require.ErrorContains(t, km.DestroyKey(t.Context(), id), "invalid key ID")
	}
	_, err = os.Stat(secret)
	require.NoError(t, err, "nothing outside the directory was touched")
}

// TestDiskUnwritable: a key that cannot be stored is not handed out.
func TestDiskUnwritable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	km, err := NewDisk(dir)
	require.NoError(t, err)
	// A file where the directory was: writes fail even for root.
	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.WriteFile(dir, nil, 0o600))
	_, err = km.GenerateKey(t.Context(), "x509-1", ca.ECP256)
	require.ErrorContains(t, err, "cannot store key")

	require.NoError(t, os.Remove(dir))
	require.NoError(t, os.Mkdir(dir, 0o700))
	_, err = km.Key(t.Context(), "x509-1")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
}

func TestKeyAlgorithms(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA key generation is slow")
	}
	km := NewMemory()
	k, err := km.GenerateKey(t.Context(), "rsa", ca.RSA2048)
	require.NoError(t, err)
	assert.Equal(t, 2048, k.Public().(*rsa.PublicKey).N.BitLen())
	k, err = km.GenerateKey(t.Context(), "ec", ca.ECP256)
	require.NoError(t, err)
	assert.Equal(t, elliptic.P256(), k.Public().(*ecdsa.PublicKey).Curve)
}
