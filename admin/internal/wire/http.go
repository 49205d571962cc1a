package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/spiffekit/spiffekit/registry"
)

// Invalid returns an error of invalid input, which the API answers 400
// with the code invalid: "admin: " and the formatted message, wrapping
// registry.ErrInvalid.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("admin: "+format+": %w", append(args, registry.ErrInvalid)...)
}

// WriteError answers an error: status, with msg and code in the JSON
// form of errors.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	WriteJSON(w, status, Error{Error: msg, Code: code})
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails
}

// LimitBody returns the body of r, limited to n bytes: reading past them
// fails with an *http.MaxBytesError. A body whose declared length is over n
// is refused so at once, before any of it is read.
func LimitBody(w http.ResponseWriter, r *http.Request, n int64) (io.Reader, error) {
	if r.ContentLength > n {
		return nil, &http.MaxBytesError{Limit: n}
	}
	return http.MaxBytesReader(w, r.Body, n), nil
}

// ReadJSON decodes into v exactly one JSON value of at most limit bytes
// from the body of r, refusing unknown fields. A body over the limit
// fails with an *http.MaxBytesError, any other malformed one with an
// Invalid error.
func ReadJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	body, err := LimitBody(w, r, limit)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return err
		}
		return Invalid("malformed request body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Invalid("request body holds more than one JSON value")
	}
	return nil
}
