package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// createEntries answers POST /v1/entries/batch: a JSON array of entries,
// created with the store's [registry.BatchCreator] in one transaction when
// it has one, else one by one. The answer is 200 with one result per
// entry, in order, whether or not each was created; errors about the
// request as a whole (a malformed body, too many entries, the store
// failing) are answered as for any other request.
func (s *Server) createEntries(w http.ResponseWriter, r *http.Request) {
	in, err := readBatch(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	results := make([]registry.BatchResult, len(in))
	var valid []registry.Entry
	var at []int // at[k] is the index in the request of valid[k]
	for i, j := range in {
		e, err := wire.EntryFromJSON(j)
		if err != nil {
			err = invalid("%v", err)
		} else {
			err = s.checkEntry(e)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		valid = append(valid, e)
		at = append(at, i)
	}
	stored, err := s.createBatch(r.Context(), valid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := wire.BatchResponse{Results: make([]wire.BatchResult, len(in))}
	created := 0
	for k, res := range stored {
		results[at[k]] = res
	}
	for i, res := range results {
		if res.Err != nil {
			out.Results[i] = s.batchError(r, res.Err)
			continue
		}
		j := wire.EntryToJSON(res.Entry)
		out.Results[i].Entry = &j
		created++
		// One line per entry at Debug; the batch is summed up at Info, so
		// that 10,000 entries do not make 10,000 lines by default.
		s.log.Debug("admin: entry created", "entry_id", res.Entry.ID, "spiffe_id", res.Entry.SPIFFEID.String())
	}
	s.log.Info("admin: entry batch done", "created", created, "failed", len(in)-created)
	writeJSON(w, http.StatusOK, out)
}

// createBatch stores entries in one transaction if the store can, else one
// by one. In the fallback, a failure other than an invalid or duplicate
// entry (the store is down) ends the walk: that entry and the ones after it
// fail with the same error, and those before it stay stored.
func (s *Server) createBatch(ctx context.Context, entries []registry.Entry) ([]registry.BatchResult, error) {
	if bc, ok := s.cfg.Entries.(registry.BatchCreator); ok {
		results, err := bc.CreateBatch(ctx, entries)
		if err == nil && len(results) != len(entries) {
			err = fmt.Errorf("admin: store answered %d results for %d entries", len(results), len(entries))
		}
		return results, err
	}
	results := make([]registry.BatchResult, len(entries))
	for i, e := range entries {
		created, err := s.cfg.Entries.Create(ctx, e)
		if err != nil && !isEntryError(err) {
			for k := i; k < len(entries); k++ {
				results[k].Err = err
			}
			break
		}
		results[i] = registry.BatchResult{Entry: created, Err: err}
	}
	return results, nil
}

// isEntryError reports whether err concerns one entry rather than the
// store.
func isEntryError(err error) bool {
	return errors.Is(err, registry.ErrInvalid) || errors.Is(err, registry.ErrAlreadyExists)
}

// batchError is the wire form of one entry's error. As in [Server.fail],
// the details of internal errors go to the log only.
func (s *Server) batchError(r *http.Request, err error) wire.BatchResult {
	switch {
	case errors.Is(err, registry.ErrInvalid):
		return wire.BatchResult{Error: err.Error(), Code: wire.CodeInvalid}
	case errors.Is(err, registry.ErrAlreadyExists):
		return wire.BatchResult{Error: err.Error(), Code: wire.CodeAlreadyExists}
	case s.timedOut(r, err):
		return wire.BatchResult{Error: s.timeoutMessage(), Code: wire.CodeUnavailable}
	}
	s.log.Error("admin: batch entry failed", "method", r.Method, "path", r.URL.Path, "err", err)
	return wire.BatchResult{Error: "admin: internal error", Code: wire.CodeInternal}
}

// readBatch decodes a JSON array of at most MaxBatchEntries entries from a
// body of at most MaxBatchRequestBody bytes, refusing unknown fields. It
// reads the array one element at a time, so that an over-long batch is
// refused before all of it is decoded.
func readBatch(w http.ResponseWriter, r *http.Request) ([]wire.Entry, error) {
	body, err := limitBody(w, r, MaxBatchRequestBody)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	malformed := func(err error) error {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return invalid("malformed request body: %v", err)
	}
	if t, err := dec.Token(); err != nil {
		return nil, malformed(err)
	} else if t != json.Delim('[') {
		return nil, invalid("request body must be a JSON array of entries")
	}
	var in []wire.Entry
	for dec.More() {
		if len(in) == MaxBatchEntries {
			return nil, invalid("batch holds more than %d entries", MaxBatchEntries)
		}
		var j wire.Entry
		if err := dec.Decode(&j); err != nil {
			return nil, malformed(err)
		}
		in = append(in, j)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, malformed(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("request body holds more than one JSON value")
	}
	return in, nil
}

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
