package jwkutil

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/go-jose/go-jose/v4"
)

const (
	// MaxDocumentSize is the largest JWK Set document, in bytes, that Decode
	// and ReadAll accept: 1 MiB, room for several hundred RSA certificates.
	MaxDocumentSize = 1 << 20

	// MaxKeys is the largest number of elements in "keys" that Decode accepts.
	MaxKeys = 1024
)

// ErrUnsupportedKey is returned by [Entry.PublicKey] and [Entry.Certificate]
// when go-jose does not support the key (for example an OKP key on curve
// X25519). Callers skip such keys, as RFC 7517 §5 suggests.
var ErrUnsupportedKey = errors.New("unsupported key type")

// privateMembers are the JWK members that hold private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// keyMembers are the members copied to go-jose to build a public key.
var keyMembers = []string{"kty", "crv", "x", "y", "n", "e"}

// Set is a decoded JWK Set document.
type Set struct {
	// Members holds every top-level member, by exact name.
	Members map[string]json.RawMessage
	// HasKeys reports whether the "keys" member is present and not null.
	HasKeys bool
	// Keys holds the usable elements of "keys" in document order. Elements
	// with a missing or unknown "kty" are not included.
	Keys []Entry
}

// Entry is one element of a JWK Set's "keys" array.
type Entry struct {
	// Index is the position of the element in "keys".
	Index int
	// Kty, Use and KeyID are the "kty", "use" and "kid" members, or "" when
	// absent or null.
	Kty, Use, KeyID string
	// X5C holds the "x5c" member; nil when absent.
	X5C []string

	members map[string]json.RawMessage
}

// ReadAll reads a document of at most [MaxDocumentSize] bytes from r.
func ReadAll(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxDocumentSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxDocumentSize {
		return nil, sizeError()
	}
	return b, nil
}

// ReadFile reads a document of at most [MaxDocumentSize] bytes from the file
// at path.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f)
}

func sizeError() error {
	return fmt.Errorf("document exceeds %d bytes", MaxDocumentSize)
}

// Decode parses a JWK Set document. Its errors carry no package prefix;
// callers add theirs.
func Decode(data []byte) (*Set, error) {
	if len(data) > MaxDocumentSize {
		return nil, sizeError()
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return nil, fmt.Errorf("unable to parse JWKS: %w", err)
	}
	if members == nil {
		return nil, errors.New("unable to parse JWKS: document is null")
	}
	set := &Set{Members: members}
	rawKeys, ok := members["keys"]
	if !ok || isNull(rawKeys) {
		return set, nil
	}
	set.HasKeys = true
	var elems []json.RawMessage
	if err := json.Unmarshal(rawKeys, &elems); err != nil {
		return nil, fmt.Errorf("unable to parse JWKS: keys: %w", err)
	}
	if len(elems) > MaxKeys {
		return nil, fmt.Errorf("JWKS has %d keys; at most %d are allowed", len(elems), MaxKeys)
	}
	for i, raw := range elems {
		e, keep, err := decodeEntry(i, raw)
		if err != nil {
			return nil, err
		}
		if keep {
			set.Keys = append(set.Keys, e)
		}
	}
	return set, nil
}

func decodeEntry(i int, raw json.RawMessage) (Entry, bool, error) {
	e := Entry{Index: i}
	if err := json.Unmarshal(raw, &e.members); err != nil || e.members == nil {
		return e, false, fmt.Errorf("unable to parse JWKS: key %d is not a JSON object", i)
	}
	// Bundle rule 14: a bundle publishes public keys only. A document that
	// leaks private material is broken; refusing it makes the leak visible.
	for _, name := range privateMembers {
		if _, ok := e.members[name]; ok {
			return e, false, fmt.Errorf("key %d carries private key member %q", i, name)
		}
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"kty", &e.Kty}, {"use", &e.Use}, {"kid", &e.KeyID}} {
		if v, ok := e.members[f.name]; ok {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return e, false, fmt.Errorf("unable to parse JWKS: key %d: %q must be a string", i, f.name)
			}
		}
	}
	if v, ok := e.members["x5c"]; ok {
		if err := json.Unmarshal(v, &e.X5C); err != nil {
			return e, false, fmt.Errorf("unable to parse JWKS: key %d: \"x5c\" must be an array of strings", i)
		}
	}
	switch e.Kty {
	case "EC", "RSA", "OKP":
		return e, true, nil
	case "oct":
		// Bundle rule 14: symmetric keys have no place in a trust bundle.
		return e, false, fmt.Errorf("key %d is a symmetric (oct) key", i)
	default:
		// Bundle rule 12: ignore the element, not the document.
		return e, false, nil
	}
}

// PublicKey builds the public key of the entry from its key members only
// ("kty", "crv", "x", "y", "n", "e"). It returns an error wrapping
// [ErrUnsupportedKey] for a key type go-jose cannot represent.
func (e *Entry) PublicKey() (crypto.PublicKey, error) {
	k, err := e.decode(false)
	if err != nil {
		return nil, err
	}
	return k.Key, nil
}

// Certificate decodes x5c[0] and checks that its public key matches the key
// members (RFC 7517 §4.7). Further x5c values are ignored (X509 rule 25). It
// must only be called when X5C is not empty.
func (e *Entry) Certificate() (*x509.Certificate, error) {
	if len(e.X5C) == 0 {
		return nil, errors.New("no x5c certificate")
	}
	k, err := e.decode(true)
	if err != nil {
		return nil, err
	}
	return k.Certificates[0], nil
}

func (e *Entry) decode(withCert bool) (*jose.JSONWebKey, error) {
	filtered := make(map[string]any, len(keyMembers)+1)
	for _, name := range keyMembers {
		if v, ok := e.members[name]; ok {
			filtered[name] = v
		}
	}
	if withCert {
		filtered["x5c"] = e.X5C[:1]
	}
	b, err := json.Marshal(filtered)
	if err != nil {
		return nil, err
	}
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(b); err != nil {
		if errors.Is(err, jose.ErrUnsupportedKeyType) {
			return nil, ErrUnsupportedKey
		}
		return nil, err
	}
	if !k.IsPublic() || !k.Valid() {
		return nil, errors.New("not a valid public key")
	}
	return &k, nil
}

func isNull(v json.RawMessage) bool {
	return string(v) == "null"
}
