package adminserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver/internal/admission"
	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/registry"
)

// createEntries answers POST /v1/entries/batch: a JSON array of entries,
// created with the store's [registry.BatchCreator] in one transaction when
// it has one, else one by one. The answer is 200 with one result per
// entry, in order, whether or not each was created; errors about the
// request as a whole (a malformed body, too many entries, the store
// failing) are answered as for any other request.
func (s *Server) createEntries(w http.ResponseWriter, r *http.Request) {
	in, err := wire.ReadBatch(w, r, admin.MaxBatchEntries, admin.MaxBatchRequestBody)
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
			err = wire.Invalid("%v", err)
		} else {
			err = admission.CheckEntry(e, s.cfg.TrustDomain, s.cfg.Now())
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
	wire.WriteJSON(w, http.StatusOK, out)
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
