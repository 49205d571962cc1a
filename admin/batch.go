package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/internal/apiclient"
	"github.com/spiffekit/spiffekit/registry"
)

// MaxBatchEntries is the largest number of entries one
// POST /v1/entries/batch request may hold; [Client.CreateEntries] splits
// longer lists into requests of at most this many.
const MaxBatchEntries = registry.MaxBatch

// MaxBatchRequestBody bounds the body of one POST /v1/entries/batch request
// in bytes. It holds MaxBatchEntries entries of ordinary size, and always
// at least one entry of the largest size the registry accepts.
const MaxBatchRequestBody = 16 << 20

// CreateEntries creates entries and returns one result per entry, in the
// same order: the entry as stored, or an error wrapping
// [registry.ErrInvalid] or [registry.ErrAlreadyExists] for an entry that
// was not created (or, for an entry the server failed to store, an error
// wrapping neither). An entry fails on its own; the others are created. It
// sends the entries in requests of at most [MaxBatchEntries] entries and
// [MaxBatchRequestBody] bytes, each created in one transaction when the
// server's store allows it.
//
// The error is for a request as a whole: the server is unreachable or
// refused it (see [Client]). Then the results cover only the entries of
// the requests answered before, a prefix of entries; the entries of the
// failed request were not created if the server answered, and may or may
// not have been if the connection broke.
func (c *Client) CreateEntries(ctx context.Context, entries []registry.Entry) ([]registry.BatchResult, error) {
	results := make([]registry.BatchResult, 0, len(entries))
	var body bytes.Buffer
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		body.WriteByte(']')
		var out wire.BatchResponse
		err := c.do(ctx, http.MethodPost, "/v1/entries/batch", nil, bytes.NewReader(body.Bytes()), &out)
		if err != nil {
			return err
		}
		if len(out.Results) != n {
			return fmt.Errorf("admin: server answered %d results for %d entries", len(out.Results), n)
		}
		for _, rj := range out.Results {
			results = append(results, batchResult(rj))
		}
		body.Reset()
		n = 0
		return nil
	}
	for _, e := range entries {
		data, err := json.Marshal(entryRequest(e))
		if err != nil {
			return results, fmt.Errorf("admin: cannot encode request: %w", err)
		}
		// The brackets and commas of the array count toward the limit.
		if n == MaxBatchEntries || n > 0 && body.Len()+1+len(data)+1 > MaxBatchRequestBody {
			if err := flush(); err != nil {
				return results, err
			}
		}
		if n == 0 {
			body.WriteByte('[')
		} else {
			body.WriteByte(',')
		}
		body.Write(data)
		n++
	}
	if err := flush(); err != nil {
		return results, err
	}
	return results, nil
}

// batchResult converts one result of the wire form.
func batchResult(rj wire.BatchResult) registry.BatchResult {
	if rj.Entry == nil || rj.Error != "" {
		msg := rj.Error
		if msg == "" {
			msg = "server answered neither an entry nor an error"
		}
		return registry.BatchResult{Err: apiclient.Refused("admin", "", msg, codeError(rj.Code))}
	}
	e, err := decodeEntry(*rj.Entry)
	if err != nil {
		return registry.BatchResult{Err: err}
	}
	return registry.BatchResult{Entry: e}
}
