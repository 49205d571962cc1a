//go:build cgo

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	p11 "github.com/miekg/pkcs11"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/softhsmtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestMain(m *testing.M) {
	code := m.Run()
	softhsmtest.Cleanup()
	os.Exit(code)
}

// open opens a key manager on tok and closes it when t ends.
func open(t *testing.T, tok softhsmtest.Token, prefix string) *KeyManager {
	t.Helper()
	km, err := Open(Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, LabelPrefix: prefix})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, km.Close()) })
	return km
}

// verifies checks that key makes signatures its public key verifies.
func verifies(t *testing.T, key crypto.Signer) {
	t.Helper()
	digest := sha256.Sum256([]byte("to be signed"))
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		require.NoError(t, err)
		assert.True(t, ecdsa.VerifyASN1(pub, digest[:], sig))
	case *rsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		require.NoError(t, err)
		require.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig))
		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
		sig, err = key.Sign(rand.Reader, digest[:], pss)
		require.NoError(t, err)
		require.NoError(t, rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, pss))
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
	defer leaktest.Check(t)()
	km := open(t, softhsmtest.NewToken(t), "")
	ctx := t.Context()

	key, err := km.GenerateKey(ctx, "x509-a", ca.ECP256)
	require.NoError(t, err)
	verifies(t, key)
	got, err := km.Key(ctx, "x509-a")
	require.NoError(t, err)
	assert.True(t, samePublicKey(key.Public(), got.Public()))

	_, err = km.GenerateKey(ctx, "x509-a", ca.ECP384)
	require.ErrorIs(t, err, ca.ErrKeyExists, "a stored key is never replaced")
	_, err = km.Key(ctx, "missing")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	require.ErrorContains(t, err, `label "spiffekit-missing"`)
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
	_, err = km.Key(ctx, "x509-b")
	require.ErrorIs(t, err, ca.ErrKeyNotFound, "a refused algorithm leaves nothing in the token")

	require.NoError(t, km.DestroyKey(ctx, "x509-a"))
	_, err = km.Key(ctx, "x509-a")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	_, err = km.GenerateKey(ctx, "x509-a", ca.ECP256)
	require.NoError(t, err, "a destroyed key's ID is free again")

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = km.GenerateKey(canceled, "x509-c", ca.ECP256)
	require.ErrorIs(t, err, context.Canceled)
	_, err = km.Key(canceled, "x509-c")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorIs(t, km.DestroyKey(canceled, "x509-c"), context.Canceled)
}

// TestAlgorithms: each algorithm makes a key of its type whose signatures
// verify.
func TestAlgorithms(t *testing.T) {
	km := open(t, softhsmtest.NewToken(t), "")
	for alg, check := range map[ca.KeyAlgorithm]func(crypto.PublicKey) bool{
		ca.ECP256: func(p crypto.PublicKey) bool { return p.(*ecdsa.PublicKey).Curve == elliptic.P256() },
		ca.ECP384: func(p crypto.PublicKey) bool { return p.(*ecdsa.PublicKey).Curve == elliptic.P384() },
		ca.RSA2048: func(p crypto.PublicKey) bool {
			return p.(*rsa.PublicKey).N.BitLen() == 2048
		},
	} {
		key, err := km.GenerateKey(t.Context(), "key-"+string(alg), alg)
		require.NoError(t, err, alg)
		assert.True(t, check(key.Public()), alg)
		verifies(t, key)
	}
}

// TestKeysStayInTheToken: the private key is a token object that is
// private, sensitive and not extractable, so the token gives out neither
// its value nor a wrapped copy.
func TestKeysStayInTheToken(t *testing.T) {
	tok := softhsmtest.NewToken(t)
	km := open(t, tok, "")
	for _, alg := range []ca.KeyAlgorithm{ca.ECP256, ca.RSA2048} {
		key, err := km.GenerateKey(t.Context(), "bound-"+string(alg), alg)
		require.NoError(t, err)
		attrs, err := km.tok.GetAttributes(key, []crypto11.AttributeType{
			p11.CKA_TOKEN, p11.CKA_PRIVATE, p11.CKA_SENSITIVE, p11.CKA_EXTRACTABLE,
			p11.CKA_ALWAYS_SENSITIVE, p11.CKA_NEVER_EXTRACTABLE})
		require.NoError(t, err)
		for _, a := range []crypto11.AttributeType{p11.CKA_TOKEN, p11.CKA_PRIVATE, p11.CKA_SENSITIVE, p11.CKA_ALWAYS_SENSITIVE, p11.CKA_NEVER_EXTRACTABLE} {
			assert.True(t, boolAttr(attrs[a]), "attribute %#x of %s", a, alg)
		}
		assert.False(t, boolAttr(attrs[p11.CKA_EXTRACTABLE]), alg)

		// Asking the token for the private value fails.
		valueAttr := crypto11.AttributeType(p11.CKA_VALUE)
		if alg != ca.ECP256 {
			valueAttr = p11.CKA_PRIVATE_EXPONENT
		}
		_, err = km.tok.GetAttribute(key, valueAttr)
		require.Error(t, err, "the token must not reveal the private key of %s", alg)
		assert.ErrorContains(t, err, "CKR_ATTRIBUTE_SENSITIVE")
	}
}

// TestRestart: keys are found again by a new key manager, as after a
// restart of the server, and still sign.
func TestRestart(t *testing.T) {
	tok := softhsmtest.NewToken(t)
	km, err := Open(Config{Module: tok.Module, TokenSerial: tok.Serial, PIN: tok.PIN})
	require.NoError(t, err)
	key, err := km.GenerateKey(t.Context(), "x509-1", ca.ECP384)
	require.NoError(t, err)
	require.NoError(t, km.Close())
	_, err = key.Sign(rand.Reader, make([]byte, 48), crypto.SHA384)
	require.Error(t, err, "the signer of a closed key manager fails rather than panics")
	_, err = km.Key(t.Context(), "x509-2")
	require.Error(t, err, "a closed key manager finds nothing")

	again := open(t, tok, "")
	got, err := again.Key(t.Context(), "x509-1")
	require.NoError(t, err)
	assert.True(t, samePublicKey(key.Public(), got.Public()))
	verifies(t, got)
	cached, err := again.Key(t.Context(), "x509-1")
	require.NoError(t, err)
	assert.Same(t, got, cached)
}

// TestOtherToken: a key of another token, or of another prefix in the
// same token, is not found, and destroying it there fails.
func TestOtherToken(t *testing.T) {
	a, b := softhsmtest.NewToken(t), softhsmtest.NewToken(t)
	kmA, kmB := open(t, a, ""), open(t, b, "")
	_, err := kmA.GenerateKey(t.Context(), "x509-1", ca.ECP256)
	require.NoError(t, err)
	_, err = kmB.Key(t.Context(), "x509-1")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	require.ErrorIs(t, kmB.DestroyKey(t.Context(), "x509-1"), ca.ErrKeyNotFound)

	other := open(t, a, "other-server-")
	_, err = other.Key(t.Context(), "x509-1")
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	_, err = other.GenerateKey(t.Context(), "x509-1", ca.ECP256)
	require.NoError(t, err, "prefixes keep servers sharing a token apart")
	_, err = kmA.Key(t.Context(), "x509-1")
	require.NoError(t, err)
}

// TestCopyableKeyRefused: a key planted under a key manager's label that
// could leave the token is not used.
func TestCopyableKeyRefused(t *testing.T) {
	tok := softhsmtest.NewToken(t)
	km := open(t, tok, "")
	label := []byte(DefaultLabelPrefix + "x509-planted")
	public, err := crypto11.NewAttributeSetWithIDAndLabel(label, label)
	require.NoError(t, err)
	private := public.Copy()
	require.NoError(t, private.Set(p11.CKA_EXTRACTABLE, true))
	require.NoError(t, private.Set(p11.CKA_SENSITIVE, false))
	_, err = km.tok.GenerateECDSAKeyPairWithAttributes(public, private, elliptic.P256())
	require.NoError(t, err)

	_, err = km.Key(t.Context(), "x509-planted")
	require.ErrorContains(t, err, "can leave the token")
	_, err = km.GenerateKey(t.Context(), "x509-planted", ca.ECP256)
	require.ErrorIs(t, err, ca.ErrKeyExists, "nor is it replaced")

	// Two keys under one label: neither is chosen.
	label = []byte(DefaultLabelPrefix + "x509-twice")
	for range 2 {
		public, err := crypto11.NewAttributeSetWithIDAndLabel(label, label)
		require.NoError(t, err)
		_, err = km.tok.GenerateECDSAKeyPairWithAttributes(public, public.Copy(), elliptic.P256())
		require.NoError(t, err)
	}
	_, err = km.Key(t.Context(), "x509-twice")
	require.ErrorContains(t, err, "refusing to choose")
	require.ErrorContains(t, km.DestroyKey(t.Context(), "x509-twice"), "refusing to choose")
}

// TestOpenRefusals: a wrong PIN, an unknown token, a module that is not a
// PKCS#11 library and incomplete configurations fail in Open, with what
// went wrong.
func TestOpenRefusals(t *testing.T) {
	tok := softhsmtest.NewToken(t)
	_, err := Open(Config{Module: tok.Module, TokenLabel: tok.Label, PIN: "not-" + tok.PIN})
	require.ErrorContains(t, err, "CKR_PIN_INCORRECT")
	require.ErrorContains(t, err, tok.Label)
	_, err = Open(Config{Module: tok.Module, TokenLabel: "no-such-token", PIN: tok.PIN})
	require.ErrorContains(t, err, "no-such-token")
	notALibrary := filepath.Join(t.TempDir(), "lib.so")
	require.NoError(t, os.WriteFile(notALibrary, []byte("not a library"), 0o600))
	_, err = Open(Config{Module: notALibrary, TokenLabel: tok.Label, PIN: tok.PIN})
	require.ErrorContains(t, err, notALibrary)

	for cfg, want := range map[Config]string{
		{TokenLabel: "t", PIN: "1"}:                                      "module path is missing",
		{Module: "m", PIN: "1"}:                                          "token label or serial",
		{Module: "m", TokenLabel: "t", TokenSerial: "s", PIN: "1"}:       "not both",
		{Module: "m", TokenLabel: "t"}:                                   "PIN is missing",
		{Module: "m", TokenLabel: "t", PIN: "1", MaxSessions: 1}:         "MaxSessions 1",
		{Module: "m", TokenLabel: "t", PIN: "1", LabelPrefix: long(200)}: "label prefix",
	} {
		_, err := Open(cfg)
		require.ErrorContains(t, err, want)
	}
}

func long(n int) string { return string(make([]byte, n)) }

// TestConcurrentSigning: the signers are safe for concurrent use (run
// with -race), each signature verifying.
func TestConcurrentSigning(t *testing.T) {
	km := open(t, softhsmtest.NewToken(t), "")
	key, err := km.GenerateKey(t.Context(), "x509-1", ca.ECP256)
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				digest := sha256.Sum256([]byte(time.Now().String()))
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
}

// flaky is a key manager whose GenerateKey fails while fail is set, as a
// token that goes away in the middle of a rotation.
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
		return nil, errors.New("token removed")
	}
	return f.KeyManager.GenerateKey(ctx, id, alg)
}

func (f *flaky) setFail(v bool) { f.mu.Lock(); f.fail = v; f.mu.Unlock() }

// TestRotation: a self-rotating CA keeps its keys in the token; a key
// manager that fails while the next CA is prepared leaves the active CA
// signing; a restart finds the keys; a key gone from the token stops the
// restart with an error naming it.
func TestRotation(t *testing.T) {
	tok := softhsmtest.NewToken(t)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	journal := rotation.NewFileJournal(filepath.Join(t.TempDir(), "journal.json"))
	km := &flaky{KeyManager: open(t, tok, "")}
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
	chain := svid(m)
	active := m.X509CAs()[0]
	require.NoError(t, chain[0].CheckSignatureFrom(active.Certificate))
	_, err = km.Key(t.Context(), active.KeyID)
	require.NoError(t, err, "the CA key is in the token")

	km.setFail(true)
	_, err = m.PrepareX509CA(t.Context())
	require.ErrorContains(t, err, "token removed")
	require.Len(t, m.X509CAs(), 1, "nothing half-prepared is published")
	require.NoError(t, svid(m)[0].CheckSignatureFrom(active.Certificate), "the active CA still signs")
	km.setFail(false)
	next, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)

	// A restart, with a new key manager on the same token, finds both.
	restarted := open(t, tok, "")
	m2, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, KeyManager: restarted, Journal: journal})
	require.NoError(t, err)
	require.Len(t, m2.X509CAs(), 2)
	require.NoError(t, svid(m2)[0].CheckSignatureFrom(active.Certificate))

	// The prepared CA's key leaves the token: the next start says which
	// key is missing instead of signing with something else.
	require.NoError(t, restarted.DestroyKey(t.Context(), next.KeyID))
	_, err = rotation.New(t.Context(), rotation.Config{TrustDomain: td, KeyManager: open(t, tok, ""), Journal: journal})
	require.ErrorIs(t, err, ca.ErrKeyNotFound)
	require.ErrorContains(t, err, next.KeyID)
}
