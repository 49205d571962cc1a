package witsvid_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
)

// fuzzKeyHex is the P-256 scalar of the WIT authority "fuzz" that signed the
// seed tokens in testdata/fuzz/FuzzParseAndValidate, and fuzzWorkloadKeyHex
// that of their cnf key. They are test keys, public by design. The seeds
// expire in 2100.
const (
	fuzzKeyHex         = "3c1d5e7f9a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c1d"
	fuzzWorkloadKeyHex = "5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3a5b7c9d1e3f5a7b"
)

func fuzzKey(tb testing.TB, hexKey string) *ecdsa.PrivateKey {
	tb.Helper()
	d, err := hex.DecodeString(hexKey)
	require.NoError(tb, err)
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	require.NoError(tb, err)
	return key
}

func fuzzBundle(tb testing.TB) *witbundle.Bundle {
	return witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{"fuzz": fuzzKey(tb, fuzzKeyHex).Public()})
}

// FuzzParseInsecure checks that ParseInsecure never panics and that an
// accepted token parses again to the same SVID. Seeds are in
// testdata/fuzz/FuzzParseInsecure.
func FuzzParseInsecure(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string) {
		svid, err := witsvid.ParseInsecure(token)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.Equal(t, token, svid.Marshal())
		require.LessOrEqual(t, len(token), witsvid.MaxTokenLength)
		require.NotEmpty(t, svid.KeyID, "WIT rule 1")
		require.NotNil(t, svid.PublicKey, "WIT rule 6")
		again, err := witsvid.ParseInsecure(svid.Marshal())
		require.NoError(t, err)
		require.Equal(t, svid, again)
	})
}

// FuzzParseAndValidate checks that ParseAndValidate never panics, and that
// what it accepts is also accepted, identically, by ParseInsecure. Seeds are
// in testdata/fuzz/FuzzParseAndValidate, signed with fuzzKeyHex.
func FuzzParseAndValidate(f *testing.F) {
	bundle := fuzzBundle(f)
	f.Fuzz(func(t *testing.T, token string) {
		svid, err := witsvid.ParseAndValidate(token, bundle)
		if err != nil {
			return
		}
		require.Equal(t, token, svid.Marshal())
		require.Equal(t, "fuzz", svid.KeyID)
		require.True(t, svid.ID.MemberOf(td))
		insecure, err := witsvid.ParseInsecure(svid.Marshal())
		require.NoError(t, err)
		require.Equal(t, svid, insecure)
	})
}

// TestFuzzSeedValid keeps the fuzz keys and the seed tokens in step: the valid
// seed must pass ParseAndValidate, so the fuzzer starts from the accept path.
func TestFuzzSeedValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParseAndValidate", "valid-es256"))
	require.NoError(t, err)
	_, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "string(")
	require.True(t, ok)
	token, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	require.NoError(t, err)
	svid, err := witsvid.ParseAndValidate(token, fuzzBundle(t))
	require.NoError(t, err)
	require.Equal(t, subject, svid.ID)
	require.True(t, fuzzKey(t, fuzzWorkloadKeyHex).PublicKey.Equal(svid.PublicKey))
}
