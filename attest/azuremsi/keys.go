package azuremsi

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/internal/jwtutil"
)

// maxKeySet bounds a JWKS response (Entra's is about 10 KB).
const maxKeySet = 1 << 20

// maxKeys bounds the keys kept of one JWKS.
const maxKeys = 256

// errUnknownKey is wrapped when a token's key ID is not in its tenant's
// JWKS, even after a fetch.
var errUnknownKey = errors.New("unknown key ID")

// keySource is the JWKS of one tenant, fetched when first needed, again
// once older than refresh, and again (at most once per minRefetch) when a
// token names a key ID it lacks, as Entra publishes a new key before it
// signs with it. When a fetch fails the keys last fetched stay in use.
type keySource struct {
	url        string
	client     *http.Client
	refresh    time.Duration
	minRefetch time.Duration

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetched time.Time // of the keys; zero: never
	tried   time.Time // of the last fetch, failed or not
}

// key returns the public key of kid.
func (k *keySource) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	key, ok := k.keys[kid]
	stale := k.fetched.IsZero() || now.Sub(k.fetched) >= k.refresh
	if ok && !stale {
		return key, nil
	}
	if stale || now.Sub(k.tried) >= k.minRefetch {
		k.tried = now
		keys, err := fetchKeySet(ctx, k.client, k.url)
		switch {
		case err == nil:
			k.keys, k.fetched = keys, now
		case k.keys == nil:
			return nil, err
		}
		// A failed fetch keeps the keys it had.
		key, ok = k.keys[kid]
	}
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownKey, kid)
	}
	return key, nil
}

// fetchKeySet gets and parses the JWKS at url.
func fetchKeySet(ctx context.Context, client *http.Client, url string) (map[string]*rsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", url, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySet+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS %s: status %d", url, resp.StatusCode)
	}
	keys, err := parseKeySet(body)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", url, err)
	}
	return keys, nil
}

// parseKeySet parses a JWKS and keeps its RSA signing keys of at least
// 2,048 bits that have a key ID. Other keys are skipped; a set with no
// usable key is an error.
func parseKeySet(b []byte) (map[string]*rsa.PublicKey, error) {
	if len(b) > maxKeySet {
		return nil, fmt.Errorf("larger than %d bytes", maxKeySet)
	}
	// Each key is parsed on its own, so that one that go-jose refuses (an
	// unknown kty, a bad curve) does not hide the others.
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON key set: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, r := range raw.Keys {
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(r) != nil {
			continue
		}
		pub, ok := jwk.Key.(*rsa.PublicKey)
		switch {
		case !ok, jwk.KeyID == "", jwk.Use != "" && jwk.Use != "sig",
			jwk.Algorithm != "" && jwk.Algorithm != string(jose.RS256),
			jwtutil.CheckKeyFitsAlg(jose.RS256, pub, "key") != nil:
			continue
		}
		if len(keys) == maxKeys {
			break
		}
		keys[jwk.KeyID] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("no RSA signing key of at least 2048 bits with a key ID")
	}
	return keys, nil
}
