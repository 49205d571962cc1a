package x509svid_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// FuzzParseRaw checks that ParseRaw never panics and that what it accepts
// survives MarshalRaw and a second ParseRaw unchanged. Seeds are in
// testdata/fuzz/FuzzParseRaw.
func FuzzParseRaw(f *testing.F) {
	f.Fuzz(func(t *testing.T, certs, key []byte) {
		svid, err := x509svid.ParseRaw(certs, key)
		if err != nil {
			return
		}
		require.NotEmpty(t, svid.Certificates)
		require.NotEmpty(t, svid.ID.Path(), "X509 rule 2")
		certs2, key2, err := svid.MarshalRaw()
		require.NoError(t, err)
		again, err := x509svid.ParseRaw(certs2, key2)
		require.NoError(t, err)
		require.Equal(t, svid.ID, again.ID)
		require.Equal(t, svid.Certificates, again.Certificates)
	})
}

// FuzzParse is FuzzParseRaw for the PEM forms, with Marshal for the round
// trip. Seeds are in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, certs, key []byte) {
		svid, err := x509svid.Parse(certs, key)
		if err != nil {
			return
		}
		certs2, key2, err := svid.Marshal()
		require.NoError(t, err)
		again, err := x509svid.Parse(certs2, key2)
		require.NoError(t, err)
		require.Equal(t, svid.ID, again.ID)
		require.Equal(t, svid.Certificates, again.Certificates)
	})
}
