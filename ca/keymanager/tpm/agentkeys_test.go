package tpm

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
)

// openAgentKeys opens agent keys on the TPM at socket, closed when t ends.
func openAgentKeys(t *testing.T, socket string) *AgentKeys {
	t.Helper()
	keys, err := OpenAgentKeys(AgentKeysConfig{Device: socket})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, keys.Close()) })
	return keys
}

// TestAgentKeys: each key is a new ECDSA P-256 key of the TPM, which cannot
// leave it, whose blob loads again after a restart (the same key, signing
// through the TPM); the blob holds no private key in clear.
func TestAgentKeys(t *testing.T) {
	tpm := newTPM(t)
	defer leaktest.Check(t)() // beside the swtpm process's, which t's cleanup stops
	keys, err := OpenAgentKeys(AgentKeysConfig{Device: tpm.Socket})
	require.NoError(t, err)
	ctx := t.Context()
	assert.Equal(t, "agent-key.tpmkey", keys.KeyFile())

	key, blob, err := keys.GenerateKey(ctx)
	require.NoError(t, err)
	pub, ok := key.Public().(*ecdsa.PublicKey)
	require.True(t, ok, "%T", key.Public())
	assert.Equal(t, elliptic.P256(), pub.Curve)
	_, isSoftware := key.(*ecdsa.PrivateKey)
	assert.False(t, isSoftware, "the TPM signs")
	verifies(t, key)
	b, err := parseBlob(blob)
	require.NoError(t, err)
	a := b.pub.ObjectAttributes
	assert.True(t, a.FixedTPM && a.FixedParent && a.SensitiveDataOrigin, "the key cannot leave the TPM")
	_, err = pemutil.ParsePrivateKey(blob)
	require.Error(t, err, "the blob is no private key in clear")

	second, secondBlob, err := keys.GenerateKey(ctx)
	require.NoError(t, err)
	assert.False(t, samePublicKey(key.Public(), second.Public()), "a new key each time")
	assert.NotEqual(t, blob, secondBlob)

	loaded, err := keys.LoadKey(ctx, blob)
	require.NoError(t, err)
	assert.True(t, samePublicKey(key.Public(), loaded.Public()))
	verifies(t, loaded)

	// After a restart, the blob gives the same key, which signs.
	require.NoError(t, keys.Close())
	require.NoError(t, keys.Close(), "Close is idempotent")
	_, err = key.Sign(rand.Reader, make([]byte, 32), crypto.SHA256)
	require.ErrorIs(t, err, errClosed)
	_, _, err = keys.GenerateKey(ctx)
	require.ErrorIs(t, err, errClosed)
	_, err = keys.LoadKey(ctx, blob)
	require.ErrorIs(t, err, errClosed)

	again := openAgentKeys(t, tpm.Socket)
	for _, k := range []struct {
		blob []byte
		pub  crypto.PublicKey
	}{{blob, key.Public()}, {secondBlob, second.Public()}} {
		got, err := again.LoadKey(ctx, k.blob)
		require.NoError(t, err)
		assert.True(t, samePublicKey(k.pub, got.Public()))
		digest := sha256.Sum256([]byte("after a restart"))
		sig, err := got.Sign(rand.Reader, digest[:], crypto.SHA256)
		require.NoError(t, err)
		assert.True(t, ecdsa.VerifyASN1(k.pub.(*ecdsa.PublicKey), digest[:], sig))
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = again.GenerateKey(canceled)
	require.ErrorIs(t, err, context.Canceled)
	_, err = again.LoadKey(canceled, blob)
	require.ErrorIs(t, err, context.Canceled)
}

// TestAgentKeysOtherTPM: the blob of an agent key, copied to a node with
// another TPM, is refused there: that TPM cannot load it.
func TestAgentKeysOtherTPM(t *testing.T) {
	tpms := swtpmtest.NewN(t, swtpmtest.NewCA(t), swtpmtest.NewCA(t))
	a, b := openAgentKeys(t, tpms[0].Socket), openAgentKeys(t, tpms[1].Socket)
	_, blob, err := a.GenerateKey(t.Context())
	require.NoError(t, err)
	_, err = b.LoadKey(t.Context(), blob)
	require.EqualError(t, err, `tpm: loading key "agent": the TPM refuses its file (made by another TPM, or altered): `+
		errorAfter(t, err, "altered): "))
	require.ErrorContains(t, err, "the TPM refuses its file")
}

// errorAfter returns what err says after prefix, the TPM's own words.
func errorAfter(t *testing.T, err error, prefix string) string {
	t.Helper()
	_, rest, ok := strings.Cut(err.Error(), prefix)
	require.True(t, ok, err.Error())
	return rest
}

// TestAgentKeysRefusals: blobs that are not a usable key of this TPM are
// refused, saying why, and never make LoadKey panic.
func TestAgentKeysRefusals(t *testing.T) {
	keys := openAgentKeys(t, newTPM(t).Socket)
	ctx := t.Context()
	_, blob, err := keys.GenerateKey(ctx)
	require.NoError(t, err)
	_, other, err := keys.GenerateKey(ctx)
	require.NoError(t, err)
	var f, g keyFile
	require.NoError(t, json.Unmarshal(blob, &f))
	require.NoError(t, json.Unmarshal(other, &g))
	f.Public = g.Public
	swapped, err := json.Marshal(f)
	require.NoError(t, err)
	corrupt := append([]byte(nil), blob...)
	corrupt[len(corrupt)/2] ^= 0x55

	// A key the TPM made duplicable: it could be exported.
	keys.km.mu.Lock()
	tmpl, err := template(ca.ECP256)
	require.NoError(t, err)
	tmpl.ObjectAttributes.FixedTPM, tmpl.ObjectAttributes.FixedParent = false, false
	r, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{Handle: keys.km.srk.Handle, Name: keys.km.srk.Name, Auth: tpm2.PasswordAuth(nil)},
		InPublic:     tpm2.New2B(tmpl),
	}.Execute(keys.km.tpm)
	keys.km.mu.Unlock()
	require.NoError(t, err)
	dup, err := encodeBlob(r.OutPublic, r.OutPrivate)
	require.NoError(t, err)

	for name, c := range map[string]struct {
		blob []byte
		want string
	}{
		"empty":      {nil, `tpm: key "agent": key file: unexpected end of JSON input`},
		"garbage":    {[]byte("-----BEGIN EC PRIVATE KEY-----"), `tpm: key "agent": key file: invalid character`},
		"version":    {[]byte(`{"version":9,"public":"AA==","private":"AA=="}`), `tpm: key "agent": key file of version 9, not 1`},
		"huge":       {make([]byte, maxBlobSize+1), `tpm: key "agent": key file of 16385 bytes, more than 16384`},
		"swapped":    {swapped, "the TPM refuses its file (made by another TPM, or altered)"},
		"duplicable": {dup, "can leave the TPM"},
	} {
		_, err := keys.LoadKey(ctx, c.blob)
		require.ErrorContains(t, err, c.want, name)
	}
	// A byte flipped anywhere is refused, by the parser or by the TPM.
	_, err = keys.LoadKey(ctx, corrupt)
	require.Error(t, err)

	_, err = OpenAgentKeys(AgentKeysConfig{Device: filepath.Join(t.TempDir(), "no-tpm")})
	require.ErrorContains(t, err, "no-tpm")
	opened := false
	keys2, err := OpenAgentKeys(AgentKeysConfig{Open: func() (transport.TPMCloser, error) {
		opened = true
		return nil, errors.New("no TPM here")
	}})
	require.True(t, opened, "Config.Open is used instead of Device")
	require.EqualError(t, err, "no TPM here")
	require.Nil(t, keys2)
}

// BenchmarkAgentKey measures what an agent key costs the TPM at each
// renewal of the agent SVID: creating the key and one signature (the
// CSR's), beside a software ECDSA P-256 key; with the CPU time of each,
// the process's and swtpm's together.
func BenchmarkAgentKey(b *testing.B) {
	digest := sha256.Sum256([]byte("csr"))
	b.Run("software", func(b *testing.B) {
		b.ReportAllocs()
		start := swtpmtest.ProcessCPUTime(b, nil)
		for b.Loop() {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(swtpmtest.ProcessCPUTime(b, nil)-start)/float64(b.N)/1e3, "cpu-µs/op")
	})
	b.Run("tpm", func(b *testing.B) {
		sw := swtpmtest.New(b, swtpmtest.NewCA(b))
		keys, err := OpenAgentKeys(AgentKeysConfig{Device: sw.Socket})
		if err != nil {
			b.Fatal(err)
		}
		defer keys.Close()
		b.ReportAllocs()
		start := swtpmtest.ProcessCPUTime(b, sw)
		for b.Loop() {
			key, _, err := keys.GenerateKey(b.Context())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(swtpmtest.ProcessCPUTime(b, sw)-start)/float64(b.N)/1e3, "cpu-µs/op")
	})
}
