package jwkutil

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
)

// ParseAuthorities decodes a plain JWK Set (the JWT and WIT bundles of the
// Workload API) into public keys by key ID. "use" is ignored (JWT rule 14).
// It fails when "keys" is absent (RFC 7517 §5 makes it required), when a key
// has no "kid" (Bundle rule 16, WIT rule 16) or when two keys share a "kid";
// keys of unknown or unsupported type are skipped (Bundle rule 12).
func ParseAuthorities(data []byte) (map[string]crypto.PublicKey, error) {
	set, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if !set.HasKeys {
		return nil, errors.New("unable to parse JWKS: missing \"keys\" member")
	}
	out := make(map[string]crypto.PublicKey, len(set.Keys))
	for _, e := range set.Keys {
		if e.KeyID == "" {
			return nil, fmt.Errorf("error adding authority %d of JWKS: keyID cannot be empty", e.Index)
		}
		if _, dup := out[e.KeyID]; dup {
			return nil, fmt.Errorf("error adding authority %d of JWKS: duplicate key ID %q", e.Index, e.KeyID)
		}
		key, err := e.PublicKey()
		if errors.Is(err, ErrUnsupportedKey) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("error adding authority %d of JWKS: %w", e.Index, err)
		}
		out[e.KeyID] = key
	}
	return out, nil
}

// MarshalAuthorities encodes keys as a plain JWK Set {"keys": [...]} without
// "use" or SPIFFE members, sorted by key ID.
func MarshalAuthorities(keys map[string]crypto.PublicKey) ([]byte, error) {
	jwks, err := MarshalKeys(keys, "")
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Keys []json.RawMessage `json:"keys"`
	}{jwks})
}
