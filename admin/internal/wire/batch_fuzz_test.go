package wire_test

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/internal/wire"
)

// FuzzReadBatch feeds arbitrary bodies to the batch decoder: no panic, no
// more than MaxBatchEntries entries, and a decoded batch survives a round
// trip through its wire form.
func FuzzReadBatch(f *testing.F) {
	f.Add([]byte(`[{"spiffe_id":"spiffe://example.org/web","parent_id":"spiffe://example.org/agent","selectors":[{"type":"unix","value":"uid:1"}]}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{},{"hint":"h"}] `))
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/entries/batch", bytes.NewReader(body))
		in, err := wire.ReadBatch(httptest.NewRecorder(), r, admin.MaxBatchEntries, admin.MaxBatchRequestBody)
		if err != nil {
			return // rejected input is fine; a panic is not
		}
		require.LessOrEqual(t, len(in), admin.MaxBatchEntries)
		data, err := json.Marshal(append([]wire.Entry{}, in...))
		require.NoError(t, err)
		again, err := wire.ReadBatch(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/entries/batch", bytes.NewReader(data)), admin.MaxBatchEntries, admin.MaxBatchRequestBody)
		require.NoError(t, err)
		require.Equal(t, len(in), len(again))
		for i := range in {
			require.Equal(t, in[i].SPIFFEID, again[i].SPIFFEID)
			require.Equal(t, in[i].Selectors, again[i].Selectors)
		}
	})
}
