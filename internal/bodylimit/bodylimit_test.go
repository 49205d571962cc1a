package bodylimit_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/bodylimit"
)

var errTooLarge = errors.New("too large")

// closer records whether the body was closed.
type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func response(body string, declared int64) (*http.Response, *closer) {
	c := &closer{Reader: strings.NewReader(body)}
	return &http.Response{Body: c, ContentLength: declared}, c
}

func TestLimit(t *testing.T) {
	for _, tt := range []struct {
		name     string
		body     string
		declared int64
		want     error
	}{
		{"shorter", "abc", 3, nil},
		{"exactly the limit", "abcde", 5, nil},
		{"exactly the limit, length unknown", "abcde", -1, nil},
		{"one byte over, length unknown", "abcdef", -1, errTooLarge},
		{"far over, length unknown", strings.Repeat("x", 1<<16), -1, errTooLarge},
		{"declared length lies low", "abcdefgh", 2, errTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, c := response(tt.body, tt.declared)
			require.NoError(t, bodylimit.Limit(resp, 5, errTooLarge))
			got, err := io.ReadAll(resp.Body)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				// Once over, it stays failed.
				_, err = resp.Body.Read(make([]byte, 1))
				require.ErrorIs(t, err, tt.want)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tt.body, string(got))
			}
			require.NoError(t, resp.Body.Close())
			assert.True(t, c.closed)
		})
	}
}

func TestLimitDeclaredTooLarge(t *testing.T) {
	resp, c := response("abcdef", 6)
	require.ErrorIs(t, bodylimit.Limit(resp, 5, errTooLarge), errTooLarge)
	assert.True(t, c.closed, "a refused response's body is closed")
}
