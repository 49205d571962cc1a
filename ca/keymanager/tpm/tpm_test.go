package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	tpmattest "github.com/spiffekit/spiffekit/attest/tpm"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// open opens a key manager on the TPM at socket with its files in dir,
// and closes it when t ends.
func open(t *testing.T, socket, dir string) *KeyManager {
	t.Helper()
	km, err := Open(Config{Device: socket, Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, km.Close()) })
	return km
}

func newTPM(t *testing.T) *swtpmtest.TPM { return swtpmtest.New(t, swtpmtest.NewCA(t)) }

// keyDir is a new key directory of t's.
func keyDir(t *testing.T) string { return filepath.Join(t.TempDir(), "keys") }

// verifies checks that key makes signatures its public key verifies.
func verifies(t *testing.T, key crypto.Signer) {
	t.Helper()
	digest := sha256.Sum256([]byte("to be signed"))
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		require.NoError(t, err)
		assert.True(t, ecdsa.VerifyASN1(pub, digest[:], sig))
		d384 := sha512.Sum384([]byte("to be signed"))
		sig, err = key.Sign(rand.Reader, d384[:], crypto.SHA384)
		require.NoError(t, err)
		assert.True(t, ecdsa.VerifyASN1(pub, d384[:], sig))
	case *rsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		require.NoError(t, err)
		require.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig))
		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = key.Sign(rand.Reader, digest[:], pss)
		require.NoError(t, err)
		require.NoError(t, rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, pss))
		_, err = key.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: 5, Hash: crypto.SHA256})
		require.ErrorContains(t, err, "salt")
	default:
		t.Fatalf("unexpected public key %T", pub)
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ka, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ka.Equal(b)
}

// TestContract is what every ca.KeyManager must do.
func TestContract(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	km := open(t, newTPM(t).Socket, dir)
	ctx := t.Context()

	key, err := km.GenerateKey(ctx, "x509-a", ca.ECP256)
	require.NoError(t, err)
	verifies(t, key)
	got, err := km.Key(ctx, "x509-a")
	require.NoError(t, err)
	assert.True(t, samePublicKey(key.Public(), got.Public()))
	info, err := os.Stat(filepath.Join(dir, "x509-a.tpmkey"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	info, err = os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	_, err = km.GenerateKey(ctx, "x509-a", ca.ECP384)
	require.ErrorIs(t, err, ca.ErrKeyExists, "a stored key is never replaced")
	_, err = km.Key(ctx, "missing")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	require.ErrorContains(t, err, "missing.tpmkey")
	require.ErrorIs(t, km.DestroyKey(ctx, "missing"), ca.ErrKeyNotFound)

	for _, id := range []string{"", "../escape", ".hidden", "a/b", "sp ace", string(make([]byte, ca.MaxKeyIDLen+1))} {
		_, err := km.GenerateKey(ctx, id, ca.ECP256)
		require.ErrorContains(t, err, "invalid key ID", "%q", id)
		_, err = km.Key(ctx, id)
		require.ErrorContains(t, err, "invalid key ID", "%q", id)
		require.ErrorContains(t, km.DestroyKey(ctx, id), "invalid key ID", "%q", id)
	}
	_, err = km.GenerateKey(ctx, "x509-b", "dsa-1024")
	require.ErrorContains(t, err, "unsupported key algorithm")

	require.NoError(t, km.DestroyKey(ctx, "x509-a"))
	_, err = km.Key(ctx, "x509-a")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	digest := sha256.Sum256(nil)
	_, err = key.Sign(rand.Reader, digest[:], crypto.SHA256)
	require.ErrorContains(t, err, "destroyed", "a destroyed key signs no more")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = km.GenerateKey(canceled, "x509-c", ca.ECP256)
	require.ErrorIs(t, err, context.Canceled)
	_, err = km.Key(canceled, "x509-c")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, km.DestroyKey(canceled, "x509-c"), context.Canceled)
}

// TestAlgorithms: each algorithm the TPM has makes a key of its type whose
// signatures verify; one it lacks fails and leaves no file.
func TestAlgorithms(t *testing.T) {
	dir := keyDir(t)
	km := open(t, newTPM(t).Socket, dir)
	for alg, check := range map[ca.KeyAlgorithm]func(crypto.PublicKey) bool{
		ca.ECP256:  func(p crypto.PublicKey) bool { return p.(*ecdsa.PublicKey).Curve == elliptic.P256() },
		ca.ECP384:  func(p crypto.PublicKey) bool { return p.(*ecdsa.PublicKey).Curve == elliptic.P384() },
		ca.RSA2048: func(p crypto.PublicKey) bool { return p.(*rsa.PublicKey).N.BitLen() == 2048 },
	} {
		key, err := km.GenerateKey(t.Context(), "key-"+string(alg), alg)
		require.NoError(t, err, alg)
		assert.True(t, check(key.Public()), alg)
		verifies(t, key)
	}
	// swtpm's TPM has no RSA-4096.
	_, err := km.GenerateKey(t.Context(), "key-rsa-4096", ca.RSA4096)
	require.ErrorContains(t, err, "creating key")
	_, err = os.Stat(filepath.Join(dir, "key-rsa-4096.tpmkey"))
	require.ErrorIs(t, err, os.ErrNotExist)

	key, err := km.Key(t.Context(), "key-"+string(ca.ECP256))
	require.NoError(t, err)
	_, err = key.Sign(rand.Reader, make([]byte, 20), crypto.SHA1)
	require.ErrorContains(t, err, "unsupported hash")
	_, err = key.Sign(rand.Reader, make([]byte, 20), crypto.SHA256)
	require.ErrorContains(t, err, "digest of 20 bytes")
}

// TestRestart: keys are found again by a new key manager, as after a
// restart of the server, and still sign; a closed key manager's signers
// fail.
func TestRestart(t *testing.T) {
	tpm, dir := newTPM(t), keyDir(t)
	km, err := Open(Config{Device: tpm.Socket, Dir: dir})
	require.NoError(t, err)
	key, err := km.GenerateKey(t.Context(), "x509-1", ca.ECP384)
	require.NoError(t, err)
	require.NoError(t, km.Close())
	require.NoError(t, km.Close(), "Close is idempotent")
	_, err = key.Sign(rand.Reader, make([]byte, 48), crypto.SHA384)
	require.ErrorIs(t, err, errClosed)
	_, err = km.Key(t.Context(), "x509-1")
	require.ErrorIs(t, err, errClosed)
	_, err = km.GenerateKey(t.Context(), "x509-2", ca.ECP256)
	require.ErrorIs(t, err, errClosed)
	require.ErrorIs(t, km.DestroyKey(t.Context(), "x509-1"), errClosed)

	again := open(t, tpm.Socket, dir)
	got, err := again.Key(t.Context(), "x509-1")
	require.NoError(t, err)
	assert.True(t, samePublicKey(key.Public(), got.Public()))
	verifies(t, got)
	cached, err := again.Key(t.Context(), "x509-1")
	require.NoError(t, err)
	assert.Same(t, got, cached)
}

// TestOtherTPM: a key file copied to a server with another TPM is
// useless there: that TPM refuses to load it.
func TestOtherTPM(t *testing.T) {
	tpms := swtpmtest.NewN(t, swtpmtest.NewCA(t), swtpmtest.NewCA(t))
	dirA, dirB := keyDir(t), keyDir(t)
	kmA, kmB := open(t, tpms[0].Socket, dirA), open(t, tpms[1].Socket, dirB)
	_, err := kmA.GenerateKey(t.Context(), "x509-1", ca.ECP256)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dirA, "x509-1.tpmkey"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dirB, "x509-1.tpmkey"), data, 0o600))
	_, err = kmB.Key(t.Context(), "x509-1")
	require.ErrorContains(t, err, "the TPM refuses its file")
	_, err = kmB.Key(t.Context(), "x509-1")
	require.ErrorContains(t, err, "the TPM refuses its file", "not cached")
}

// TestKeyFileRefusals: a file others may read, garbage, a file whose
// public area was altered, and a key that could leave the TPM are refused.
func TestKeyFileRefusals(t *testing.T) {
	dir := keyDir(t)
	km := open(t, newTPM(t).Socket, dir)
	ctx := t.Context()
	_, err := km.GenerateKey(ctx, "x509-1", ca.ECP256)
	require.NoError(t, err)
	path := filepath.Join(dir, "x509-1.tpmkey")
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	write := func(id string, b []byte, perm os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, id+".tpmkey")
		require.NoError(t, os.WriteFile(p, b, perm))
		require.NoError(t, os.Chmod(p, perm))
	}
	write("shared", data, 0o644)
	_, err = km.Key(ctx, "shared")
	require.ErrorContains(t, err, "permissions 0644")
	write("junk", []byte("junk"), 0o600)
	_, err = km.Key(ctx, "junk")
	require.ErrorContains(t, err, "key file")

	// The public area of another key of the same TPM with the private area
	// of this one: the TPM's integrity check refuses the pair.
	_, err = km.GenerateKey(ctx, "x509-2", ca.ECP256)
	require.NoError(t, err)
	other, err := os.ReadFile(filepath.Join(dir, "x509-2.tpmkey"))
	require.NoError(t, err)
	var f, g keyFile
	require.NoError(t, json.Unmarshal(data, &f))
	require.NoError(t, json.Unmarshal(other, &g))
	f.Public = g.Public
	swapped, err := json.Marshal(f)
	require.NoError(t, err)
	write("swapped", swapped, 0o600)
	_, err = km.Key(ctx, "swapped")
	require.ErrorContains(t, err, "the TPM refuses its file")

	// A key the TPM made duplicable: it could be exported, so it is not a
	// CA key even though the TPM would load it.
	km.mu.Lock()
	tmpl, err := template(ca.ECP256)
	require.NoError(t, err)
	tmpl.ObjectAttributes.FixedTPM, tmpl.ObjectAttributes.FixedParent = false, false
	r, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: km.srk.Handle, Name: km.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2B(tmpl),
	}.Execute(km.tpm)
	km.mu.Unlock()
	require.NoError(t, err)
	dup, err := encodeBlob(r.OutPublic, r.OutPrivate)
	require.NoError(t, err)
	write("duplicable", dup, 0o600)
	_, err = km.Key(ctx, "duplicable")
	require.ErrorContains(t, err, "can leave the TPM")
}

// TestOpenRefusals: what Open refuses, saying why.
func TestOpenRefusals(t *testing.T) {
	_, err := Open(Config{})
	require.ErrorContains(t, err, "key directory is missing")
	shared := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, os.Mkdir(shared, 0o755))
	require.NoError(t, os.Chmod(shared, 0o755))
	_, err = Open(Config{Dir: shared, Device: "/nonexistent"})
	require.ErrorContains(t, err, "permissions")
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = Open(Config{Dir: file})
	require.Error(t, err)
	_, err = Open(Config{Dir: filepath.Join(file, "sub")})
	require.ErrorContains(t, err, "cannot create key directory")
	_, err = Open(Config{Dir: keyDir(t), Device: filepath.Join(t.TempDir(), "no-tpm")})
	require.ErrorContains(t, err, "no-tpm")
}

// TestManyKeys: more keys than the TPM keeps loaded sign in turn, each
// loaded again when its turn comes; signers are safe for concurrent use.
func TestManyKeys(t *testing.T) {
	km := open(t, newTPM(t).Socket, keyDir(t))
	var keys []crypto.Signer
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		key, err := km.GenerateKey(t.Context(), id, ca.ECP256)
		require.NoError(t, err)
		keys = append(keys, key)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4*10)
	for _, key := range keys {
		wg.Go(func() {
			for i := range 10 {
				digest := sha256.Sum256([]byte{byte(i)})
				sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
				if err == nil && !ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), digest[:], sig) {
					err = errors.New("a signature does not verify")
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	km.mu.Lock()
	assert.LessOrEqual(t, len(km.loaded), maxLoaded)
	km.mu.Unlock()
}

// flaky is a key manager whose GenerateKey fails while fail is set, as a
// TPM that stops answering in the middle of a rotation.
type flaky struct {
	*KeyManager
	mu   sync.Mutex
	fail bool
}

func (f *flaky) GenerateKey(ctx context.Context, id string, alg ca.KeyAlgorithm) (crypto.Signer, error) {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return nil, errors.New("TPM not answering")
	}
	return f.KeyManager.GenerateKey(ctx, id, alg)
}

func (f *flaky) setFail(v bool) { f.mu.Lock(); f.fail = v; f.mu.Unlock() }

// TestRotation: a self-rotating CA keeps its keys in the TPM; a key
// manager that fails while the next CA is prepared leaves the active CA
// signing; a restart finds the keys; a key file gone stops the restart
// with an error naming the key.
func TestRotation(t *testing.T) {
	tpm, dir := newTPM(t), keyDir(t)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	journal := rotation.NewFileJournal(filepath.Join(t.TempDir(), "journal.json"))
	km := &flaky{KeyManager: open(t, tpm.Socket, dir)}
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, KeyManager: km, Journal: journal})
	require.NoError(t, err)
	svid := func(m *rotation.Manager) []*x509.Certificate {
		t.Helper()
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		chain, err := m.SignX509SVID(t.Context(), ca.X509SVIDParams{ID: spiffeid.RequireFromString("spiffe://example.org/w"), PublicKey: key.Public()})
		require.NoError(t, err)
		return chain
	}
	active := m.X509CAs()[0]
	require.NoError(t, svid(m)[0].CheckSignatureFrom(active.Certificate))
	_, err = os.Stat(filepath.Join(dir, active.KeyID+".tpmkey"))
	require.NoError(t, err, "the CA key's file")

	km.setFail(true)
	_, err = m.PrepareX509CA(t.Context())
	require.ErrorContains(t, err, "TPM not answering")
	require.Len(t, m.X509CAs(), 1, "nothing half-prepared is published")
	require.NoError(t, svid(m)[0].CheckSignatureFrom(active.Certificate), "the active CA still signs")
	km.setFail(false)
	next, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, km.Close())

	restarted := open(t, tpm.Socket, dir)
	m2, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, KeyManager: restarted, Journal: journal})
	require.NoError(t, err)
	require.Len(t, m2.X509CAs(), 2)
	require.NoError(t, svid(m2)[0].CheckSignatureFrom(active.Certificate))
	require.NoError(t, restarted.Close())

	require.NoError(t, os.Remove(filepath.Join(dir, next.KeyID+".tpmkey")))
	_, err = rotation.New(t.Context(), rotation.Config{TrustDomain: td, KeyManager: open(t, tpm.Socket, dir), Journal: journal})
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	require.ErrorContains(t, err, next.KeyID)
}

// TestOwnerAuthorization: a TPM whose owner hierarchy has a password
// cannot make the SRK without it; Open says so rather than failing later.
func TestOwnerAuthorization(t *testing.T) {
	sw := newTPM(t)
	dev, err := tpmattest.OpenDevice(sw.Socket)
	require.NoError(t, err)
	_, err = tpm2.HierarchyChangeAuth{
		AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)},
		NewAuth:    tpm2.TPM2BAuth{Buffer: []byte("owner secret")},
	}.Execute(dev)
	require.NoError(t, err)
	require.NoError(t, dev.Close())

	_, err = Open(Config{Device: sw.Socket, Dir: keyDir(t)})
	require.ErrorContains(t, err, "the owner hierarchy must have an empty authorization")

	// The TPM is still usable by whoever opens it next: Open closed it.
	opened := false
	_, err = Open(Config{Dir: keyDir(t), Open: func() (transport.TPMCloser, error) {
		opened = true
		return tpmattest.OpenDevice(sw.Socket)
	}})
	require.True(t, opened, "Config.Open is used instead of Device")
	require.ErrorContains(t, err, "the owner hierarchy must have an empty authorization")
}
