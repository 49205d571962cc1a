package jointoken

import (
	"encoding/base64"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
)

// FuzzParse feeds arbitrary payloads to the token parser: it must never
// panic, and a token it accepts must have exactly one spelling.
func FuzzParse(f *testing.F) {
	f.Add("0123456789abcdef0123456789abcdef.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	f.Add("a.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	f.Add(".")
	f.Fuzz(func(t *testing.T, token string) {
		id, secret, err := parse(token)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.True(t, registry.ValidTokenID(id))
		require.Len(t, secret, secretSize)
		require.Equal(t, token, id+"."+base64.RawURLEncoding.EncodeToString(secret))
	})
}
