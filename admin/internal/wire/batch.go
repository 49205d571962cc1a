package wire

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// BatchResult is one entry's outcome in a batch: the entry as stored, or
// an error with its code.
type BatchResult struct {
	Entry *Entry `json:"entry,omitempty"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// BatchResponse is the answer to POST /v1/entries/batch: one result per
// entry of the request, in its order.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// ReadBatch decodes from the body of r, of at most limit bytes, a JSON
// array of at most maxEntries entries, refusing unknown fields. It reads
// the array one element at a time, so that an over-long batch is refused
// before all of it is decoded. A body over the limit fails with an
// *http.MaxBytesError, any other malformed one with an Invalid error.
func ReadBatch(w http.ResponseWriter, r *http.Request, maxEntries int, limit int64) ([]Entry, error) {
	body, err := LimitBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	malformed := func(err error) error {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return Invalid("malformed request body: %v", err)
	}
	if t, err := dec.Token(); err != nil {
		return nil, malformed(err)
	} else if t != json.Delim('[') {
		return nil, Invalid("request body must be a JSON array of entries")
	}
	var in []Entry
	for dec.More() {
		if len(in) == maxEntries {
			return nil, Invalid("batch holds more than %d entries", maxEntries)
		}
		var j Entry
		if err := dec.Decode(&j); err != nil {
			return nil, malformed(err)
		}
		in = append(in, j)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, malformed(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Invalid("request body holds more than one JSON value")
	}
	return in, nil
}
