package jwtsvid_test

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

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// fuzzKeyHex is the P-256 scalar of the key "fuzz" that signed the seed
// tokens in testdata/fuzz/FuzzParseAndValidate. It is a test key, public by
// design. The seeds expire in 2100.
const fuzzKeyHex = "4f6b1f2e7a1c9d3b8e5a2c4d6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192"

func fuzzKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	d, err := hex.DecodeString(fuzzKeyHex)
	require.NoError(tb, err)
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	require.NoError(tb, err)
	return key
}

// FuzzParseInsecure checks that ParseInsecure never panics and that an
// accepted token parses again to the same SVID. Seeds are in
// testdata/fuzz/FuzzParseInsecure.
func FuzzParseInsecure(f *testing.F) {
	f.Fuzz(func(t *testing.T, token string) {
		svid, err := jwtsvid.ParseInsecure(token, nil)
		if err != nil {
			return
		}
		require.Equal(t, token, svid.Marshal())
		require.LessOrEqual(t, len(token), jwtsvid.MaxTokenLength)
		// A token accepted without audience is accepted for each of its own.
		again, err := jwtsvid.ParseInsecure(svid.Marshal(), svid.Audience)
		require.NoError(t, err)
		require.Equal(t, svid.ID, again.ID)
		require.Equal(t, svid.Expiry, again.Expiry)
	})
}

// FuzzParseAndValidate checks that ParseAndValidate never panics, and that
// what it accepts is also accepted, identically, by ParseInsecure. Seeds are
// in testdata/fuzz/FuzzParseAndValidate, signed with fuzzKeyHex.
func FuzzParseAndValidate(f *testing.F) {
	key := fuzzKey(f)
	bundle := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"fuzz": key.Public()})
	f.Fuzz(func(t *testing.T, token string) {
		svid, err := jwtsvid.ParseAndValidate(token, bundle, svc)
		if err != nil {
			return
		}
		require.Equal(t, token, svid.Marshal())
		require.Contains(t, svid.Audience, "svc", "JWT rule 7")
		insecure, err := jwtsvid.ParseInsecure(svid.Marshal(), svc)
		require.NoError(t, err)
		require.Equal(t, svid.ID, insecure.ID)
		require.Equal(t, svid.Claims, insecure.Claims)
	})
}

// TestFuzzSeedValid keeps the fuzz key and the seed tokens in step: the valid
// seed must pass ParseAndValidate, so the fuzzer starts from the accept path.
func TestFuzzSeedValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParseAndValidate", "valid-es256"))
	require.NoError(t, err)
	_, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "string(")
	require.True(t, ok)
	token, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	require.NoError(t, err)
	bundle := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"fuzz": fuzzKey(t).Public()})
	svid, err := jwtsvid.ParseAndValidate(token, bundle, svc)
	require.NoError(t, err)
	require.Equal(t, subject, svid.ID)
}
