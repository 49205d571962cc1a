package wire_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
)

// TestReadJSON: one JSON value of known fields within the limit is read;
// anything else is refused, a body over the limit as such.
func TestReadJSON(t *testing.T) {
	read := func(body string, limit int64) (wire.Count, error) {
		var c wire.Count
		err := wire.ReadJSON(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), &c, limit)
		return c, err
	}
	c, err := read(`{"count":3}`, 64)
	require.NoError(t, err)
	assert.Equal(t, 3, c.Count)

	for body, want := range map[string]string{
		`{"count":3,"more":1}`: `admin: malformed request body: json: unknown field "more": registry: invalid argument`,
		`{"count":3} {}`:       "admin: request body holds more than one JSON value: registry: invalid argument",
		`{"count":`:            "admin: malformed request body: unexpected EOF: registry: invalid argument",
	} {
		_, err := read(body, 64)
		require.ErrorIs(t, err, registry.ErrInvalid, body)
		assert.EqualError(t, err, want, body)
	}

	// Declared over the limit: refused before reading.
	_, err = read(`{"count":12345}`, 8)
	tooLarge, ok := errors.AsType[*http.MaxBytesError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, int64(8), tooLarge.Limit)
	// Undeclared: refused when the reading passes it.
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"count":12345}`))
	r.ContentLength = -1
	err = wire.ReadJSON(httptest.NewRecorder(), r, &wire.Count{}, 8)
	_, ok = errors.AsType[*http.MaxBytesError](err)
	require.True(t, ok, "%v", err)
}

// TestWriteError: an error answer is the JSON form of errors, not to be
// sniffed as anything else.
func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	wire.WriteError(w, http.StatusConflict, wire.CodeConflict, "admin: revision 2 is stale")
	assert.Equal(t, http.StatusConflict, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	assert.JSONEq(t, `{"error":"admin: revision 2 is stale","code":"conflict"}`, w.Body.String())
}
