package rotation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type persistent struct {
	dir     string
	keys    *keymanager.Disk
	journal *FileJournal
}

func newPersistent(t testing.TB, dir string) persistent {
	t.Helper()
	keys, err := keymanager.NewDisk(filepath.Join(dir, "keys"))
	require.NoError(t, err)
	return persistent{dir: dir, keys: keys, journal: NewFileJournal(filepath.Join(dir, "journal.json"))}
}

func (p persistent) config(now func() time.Time) Config {
	return Config{TrustDomain: td, KeyManager: p.keys, Journal: p.journal, Now: now}
}

// TestRestartMidRotation stops the manager while a CA is prepared and an old
// one is still in the bundle; a new manager on the same directory continues
// with the same authorities, bundle and sequence, and rotates on.
func TestRestartMidRotation(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	m1 := newManager(t, newPersistent(t, dir).config(clk.Now))
	early := mintSVID(t, m1, 0)
	clk.Add(21 * time.Hour) // first CA old, second active
	require.NoError(t, m1.Rotate(t.Context()))
	clk.Add(12 * time.Hour) // third prepared, first dropped
	require.NoError(t, m1.Rotate(t.Context()))
	clk.Add(-10 * time.Hour) // back to a moment with old + active + prepared
	m1 = newManager(t, newPersistent(t, dir).config(clk.Now))
	_, err := m1.PrepareX509CA(t.Context())
	require.NoError(t, err)
	mid := mintSVID(t, m1, 0)
	_ = early

	// A new process: fresh key manager instance (nothing cached), same files.
	m2 := newManager(t, newPersistent(t, dir).config(clk.Now))
	assert.True(t, m1.Bundle().Equal(m2.Bundle()), "same bundle, same sequence")
	assert.Equal(t, m1.X509CAs(), stripAuthorities(m2.X509CAs(), m1.X509CAs()))
	assert.Equal(t, m1.X509Authority().Certificate().Raw, m2.X509Authority().Certificate().Raw)
	assert.Equal(t, m1.JWTAuthority().KeyID(), m2.JWTAuthority().KeyID())
	require.NoError(t, verifyAt(m2, mid, clk.Now()))

	// The restored prepared CA activates with its restored key.
	prepared, ok := findState(m2.X509CAs(), StatePrepared)
	require.True(t, ok)
	require.NoError(t, m2.ActivateX509CA(t.Context()))
	chain := mintSVID(t, m2, 0)
	assert.Equal(t, prepared.Certificate.Raw, chain[1].Raw)
	require.NoError(t, verifyAt(m2, chain, clk.Now()))
	require.NoError(t, verifyAt(m2, mid, clk.Now()))

	// Journal and keys are private.
	for _, p := range []string{filepath.Join(dir, "journal.json"), filepath.Join(dir, "keys", prepared.KeyID+".key")} {
		info, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), p)
	}
}

// stripAuthorities returns got with the certificate pointers of want, so that
// the two lists compare by value.
func stripAuthorities(got, want []AuthorityInfo) []AuthorityInfo {
	out := make([]AuthorityInfo, len(got))
	for i := range got {
		out[i] = got[i]
		if i < len(want) && got[i].Certificate.Equal(want[i].Certificate) {
			out[i].Certificate = want[i].Certificate
			out[i].PublicKey = want[i].PublicKey
		}
	}
	return out
}

func TestRestartUnchanged(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	m1 := newManager(t, newPersistent(t, dir).config(clk.Now))
	before, err := os.ReadFile(filepath.Join(dir, "journal.json"))
	require.NoError(t, err)
	m2 := newManager(t, newPersistent(t, dir).config(clk.Now))
	after, err := os.ReadFile(filepath.Join(dir, "journal.json"))
	require.NoError(t, err)
	assert.Equal(t, before, after, "a restart with nothing due writes nothing")
	assert.True(t, m1.Bundle().Equal(m2.Bundle()))
}

// rewriteState edits the state of a journal document and fixes its checksum,
// to build journals that are intact but inconsistent.
func rewriteState(t *testing.T, doc []byte, edit func(js *journalState)) []byte {
	t.Helper()
	var d journalDoc
	require.NoError(t, json.Unmarshal(doc, &d))
	var js journalState
	require.NoError(t, json.Unmarshal(d.State, &js))
	edit(&js)
	raw, err := json.Marshal(js)
	require.NoError(t, err)
	sum := sha256.Sum256(raw)
	d.State, d.Checksum = raw, hex.EncodeToString(sum[:])
	out, err := json.Marshal(d)
	require.NoError(t, err)
	return out
}

func TestCorruptJournal(t *testing.T) {
	dir := t.TempDir()
	clk := newClock(t0)
	m := newManager(t, newPersistent(t, dir).config(clk.Now))
	_, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	path := filepath.Join(dir, "journal.json")
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name string
		doc  []byte
	}{
		{"empty file", []byte{}},
		{"truncated", good[:len(good)/2]},
		{"truncated by one byte", good[:len(good)-2]},
		{"garbage", []byte("not json at all")},
		{"trailing data", append(append([]byte(nil), good...), []byte(`{}`)...)},
		{"flipped bit in state", flip(good, len(good)/2)},
		{"unknown field", []byte(`{"version":1,"sha256":"","state":{},"extra":1}`)},
		{"version 2", rewriteVersion(t, good, 2)},
		{"other trust domain", rewriteState(t, good, func(js *journalState) { js.TrustDomain = "other.org" })},
		{"two active CAs", rewriteState(t, good, func(js *journalState) {
			for i := range js.X509CAs {
				js.X509CAs[i].State = StateActive
			}
		})},
		{"two active JWT keys", rewriteState(t, good, func(js *journalState) {
			js.JWTKeys = append(js.JWTKeys, js.JWTKeys[0])
			js.JWTKeys[1].KeyID = "jwt-other"
			js.JWTKeys[1].KID = "other"
		})},
		{"unknown state", rewriteState(t, good, func(js *journalState) { js.X509CAs[0].State = "retired" })},
		{"unknown JWT state", rewriteState(t, good, func(js *journalState) { js.JWTKeys[0].State = "retired" })},
		{"duplicate key ID", rewriteState(t, good, func(js *journalState) { js.X509CAs[1].KeyID = js.X509CAs[0].KeyID })},
		{"path in key ID", rewriteState(t, good, func(js *journalState) { js.X509CAs[0].KeyID = "../../etc/passwd" })},
		{"bad certificate", rewriteState(t, good, func(js *journalState) { js.X509CAs[0].Chain[0] = []byte("junk") })},
		{"bad root", rewriteState(t, good, func(js *journalState) { js.X509CAs[0].Roots[0] = []byte("junk") })},
		{"no chain", rewriteState(t, good, func(js *journalState) { js.X509CAs[0].Chain = nil })},
		{"root of another CA", rewriteState(t, good, func(js *journalState) { js.X509CAs[0].Roots = js.X509CAs[1].Roots })},
		{"chain out of order", rewriteState(t, good, func(js *journalState) {
			js.X509CAs[0].Chain = append(js.X509CAs[0].Chain, js.X509CAs[1].Chain[0])
		})},
		{"bad JWT key", rewriteState(t, good, func(js *journalState) { js.JWTKeys[0].PublicKey = []byte("junk") })},
		{"empty kid", rewriteState(t, good, func(js *journalState) { js.JWTKeys[0].KID = "" })},
		{"JWT key validity", rewriteState(t, good, func(js *journalState) { js.JWTKeys[0].NotAfter = js.JWTKeys[0].NotBefore })},
		{"zero sequence", rewriteState(t, good, func(js *journalState) { js.Sequence = 0 })},
		{"too many", rewriteState(t, good, func(js *journalState) {
			for range maxAuthorities {
				js.JWTKeys = append(js.JWTKeys, js.JWTKeys[0])
			}
		})},
		{"key swapped", rewriteState(t, good, func(js *journalState) {
			js.X509CAs[0].KeyID, js.X509CAs[1].KeyID = js.X509CAs[1].KeyID, js.X509CAs[0].KeyID
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, tt.doc, 0o600))
			_, err := New(t.Context(), newPersistent(t, dir).config(clk.Now))
			require.ErrorIs(t, err, ErrCorruptJournal)
			t.Log(err)
		})
	}

	t.Run("missing key", func(t *testing.T) {
		require.NoError(t, os.WriteFile(path, good, 0o600))
		_, err := New(t.Context(), Config{TrustDomain: td, Journal: NewFileJournal(path), Now: clk.Now})
		require.ErrorIs(t, err, ca.ErrKeyNotFound)
	})
	t.Run("journal readable by others", func(t *testing.T) {
		require.NoError(t, os.WriteFile(path, good, 0o600))
		require.NoError(t, os.Chmod(path, 0o644))
		_, err := New(t.Context(), newPersistent(t, dir).config(clk.Now))
		require.ErrorContains(t, err, "permissions")
	})
	t.Run("reindented journal still loads", func(t *testing.T) {
		var doc bytes.Buffer
		require.NoError(t, json.Indent(&doc, good, "  ", "\t"))
		require.NoError(t, os.WriteFile(path, doc.Bytes(), 0o600))
		require.NoError(t, os.Chmod(path, 0o600))
		_, err := New(t.Context(), newPersistent(t, dir).config(clk.Now))
		require.NoError(t, err)
	})
}

func rewriteVersion(t *testing.T, doc []byte, v int) []byte {
	t.Helper()
	var d journalDoc
	require.NoError(t, json.Unmarshal(doc, &d))
	d.Version = v
	out, err := json.Marshal(d)
	require.NoError(t, err)
	return out
}

func TestFileJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "journal.json")
	j := NewFileJournal(path)
	got, err := j.Load(t.Context())
	require.NoError(t, err)
	require.Nil(t, got, "no journal yet")
	require.NoError(t, j.Store(t.Context(), []byte("one")))
	require.NoError(t, j.Store(t.Context(), []byte("two")))
	got, err = j.Load(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []byte("two"), got)
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	// A stale temporary file from a crash is ignored.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", ".journal.json.tmp-123"), []byte("x"), 0o600))
	got, err = j.Load(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []byte("two"), got)

	require.NoError(t, os.WriteFile(path, make([]byte, MaxJournalSize+1), 0o600))
	_, err = j.Load(t.Context())
	require.ErrorContains(t, err, "larger than")

	// A directory in the way.
	require.Error(t, NewFileJournal(dir).Store(t.Context(), []byte("x")))
	_, err = NewFileJournal(dir).Load(t.Context())
	require.Error(t, err)
}

func TestJournalTrustDomainMismatch(t *testing.T) {
	dir := t.TempDir()
	p := newPersistent(t, dir)
	newManager(t, p.config(nil))
	cfg := p.config(nil)
	cfg.TrustDomain = spiffeid.RequireTrustDomainFromString("other.org")
	_, err := New(t.Context(), cfg)
	require.ErrorIs(t, err, ErrCorruptJournal)
	require.ErrorContains(t, err, "other.org")
}
