package gcpiit

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/internal/jwkutil"
	"github.com/spiffekit/spiffekit/internal/jwtutil"
)

// GoogleKeysURL is where Google publishes the keys that sign its identity
// tokens, as a JWK Set.
const GoogleKeysURL = "https://www.googleapis.com/oauth2/v3/certs"

// Bounds of the key cache.
const (
	// MaxKeysSize bounds a key document, fetched or given.
	MaxKeysSize = jwkutil.MaxDocumentSize
	// maxKeys bounds the keys of a document.
	maxKeys = 64
	// defaultKeysLifetime is how long fetched keys are fresh when the
	// response says nothing (Cache-Control max-age, Expires).
	defaultKeysLifetime = time.Hour
	// minKeysLifetime and maxKeysLifetime bound what a response says.
	minKeysLifetime = time.Minute
	maxKeysLifetime = 24 * time.Hour
	// maxStale is how long keys past their lifetime are still used
	// while fetching new ones fails.
	maxStale = 24 * time.Hour
	// refetchInterval is the least time between two fetches made for a
	// key ID the fresh keys lack, so that tokens naming made-up key IDs
	// cannot make the server fetch at their rate.
	refetchInterval = 30 * time.Second
	// keysFetchTimeout bounds one fetch.
	keysFetchTimeout = 10 * time.Second
)

// errUnknownKey is wrapped when no key of the token's ID is known.
var errUnknownKey = errors.New("unknown key ID")

// ParseKeys parses a document of Google's token-signing keys, in either
// of the forms Google publishes: a JWK Set ({"keys": [...]}, as at
// [GoogleKeysURL]) or an object of key IDs to PEM certificates (as at
// https://www.googleapis.com/oauth2/v1/certs). Only RSA keys of at least
// 2,048 bits, with a key ID, for signing and RS256, are kept; a document
// with none of them, or with two keys of one ID, is refused.
func ParseKeys(doc []byte) (map[string]*rsa.PublicKey, error) {
	if len(doc) > MaxKeysSize {
		return nil, fmt.Errorf("key document is larger than %d bytes", MaxKeysSize)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(doc, &members); err != nil {
		return nil, fmt.Errorf("key document is not a JSON object: %w", err)
	}
	if members == nil {
		return nil, errors.New("key document is null")
	}
	var keys map[string]*rsa.PublicKey
	var err error
	if _, ok := members["keys"]; ok {
		keys, err = parseJWKS(doc)
	} else {
		keys, err = parseCerts(members)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("key document holds no RSA signing key")
	}
	return keys, nil
}

// parseJWKS reads the RSA signing keys of a JWK Set.
func parseJWKS(doc []byte) (map[string]*rsa.PublicKey, error) {
	set, err := jwkutil.Decode(doc)
	if err != nil {
		return nil, err
	}
	keys := map[string]*rsa.PublicKey{}
	for _, e := range set.Keys {
		if e.Kty != "RSA" || (e.Use != "" && e.Use != "sig") || e.KeyID == "" {
			continue
		}
		pub, err := e.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", e.KeyID, err)
		}
		if err := addKey(keys, e.KeyID, pub); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// parseCerts reads an object of key IDs to PEM certificates.
func parseCerts(members map[string]json.RawMessage) (map[string]*rsa.PublicKey, error) {
	keys := map[string]*rsa.PublicKey{}
	for kid, raw := range members {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("key document: %q is not a PEM certificate string", truncate(kid))
		}
		block, rest := pem.Decode([]byte(s))
		if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("key document: %q is not one PEM certificate", truncate(kid))
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key document: certificate %q: %w", truncate(kid), err)
		}
		if err := addKey(keys, kid, cert.PublicKey); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// addKey adds pub under kid if it can verify RS256.
func addKey(keys map[string]*rsa.PublicKey, kid string, pub any) error {
	if kid == "" || len(kid) > 256 {
		return errors.New("key document: a key ID is empty or longer than 256 bytes")
	}
	if keys[kid] != nil {
		return fmt.Errorf("key document: two keys of ID %q", truncate(kid))
	}
	if len(keys) >= maxKeys {
		return fmt.Errorf("key document: more than %d keys", maxKeys)
	}
	if err := jwtutil.CheckKeyFitsAlg(jose.RS256, pub, "key "+strconv.Quote(truncate(kid))); err != nil {
		return fmt.Errorf("key document: %w", err)
	}
	keys[kid] = pub.(*rsa.PublicKey)
	return nil
}

// keySource finds the key of a key ID.
type keySource interface {
	key(ctx context.Context, kid string, now time.Time) (*rsa.PublicKey, error)
}

// staticKeys are keys given once (a file, for servers without access to
// Google's URL).
type staticKeys map[string]*rsa.PublicKey

func (k staticKeys) key(_ context.Context, kid string, _ time.Time) (*rsa.PublicKey, error) {
	if pub := k[kid]; pub != nil {
		return pub, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownKey, truncate(kid))
}

// remoteKeys fetches keys from a URL and keeps them for as long as the
// response allows.
type remoteKeys struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fresh   time.Time // keys are fresh until then
	lastTry time.Time // of the last fetch, good or not
	lastErr error     // of the last fetch
}

func newRemoteKeys(url string, client *http.Client) *remoteKeys {
	if client == nil {
		client = &http.Client{
			Timeout: keysFetchTimeout,
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
				TLSHandshakeTimeout:   5 * time.Second,
				ResponseHeaderTimeout: keysFetchTimeout,
				MaxIdleConns:          2,
				IdleConnTimeout:       time.Minute,
			},
		}
	}
	return &remoteKeys{url: url, client: client}
}

// key returns the key of kid. The keys are fetched when they are not
// fresh, or when kid is unknown; a fetch that failed, or one for an
// unknown kid, is not tried again for refetchInterval. While fetching
// fails, the keys held are used until maxStale past their freshness;
// after that, or for a kid they lack, the error is not a rejection: the
// server could not decide.
func (r *remoteKeys) key(ctx context.Context, kid string, now time.Time) (*rsa.PublicKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pub := r.keys[kid]
	fresh := now.Before(r.fresh)
	if pub != nil && fresh {
		return pub, nil
	}
	waited := r.lastTry.IsZero() || now.Sub(r.lastTry) >= refetchInterval
	if waited || (!fresh && r.lastErr == nil) {
		keys, lifetime, err := r.fetch(ctx)
		if err != nil && ctx.Err() != nil {
			// The attestation ended (its agent left): not a failure of
			// the URL's, which the next attestation tries at once.
			return nil, fmt.Errorf("Google's keys: %w", err)
		}
		r.lastTry, r.lastErr = now, err
		if err == nil {
			r.keys, r.fresh = keys, now.Add(lifetime)
			pub = keys[kid]
		}
	}
	switch {
	case r.lastErr == nil && pub == nil:
		return nil, fmt.Errorf("%w %q", errUnknownKey, truncate(kid))
	case r.lastErr == nil:
		return pub, nil
	case pub != nil && now.Before(r.fresh.Add(maxStale)):
		return pub, nil
	}
	return nil, fmt.Errorf("Google's keys: %w", r.lastErr)
}

// fetch gets and parses the key document, and says how long it is fresh.
func (r *remoteKeys) fetch(ctx context.Context) (map[string]*rsa.PublicKey, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, keysFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %s", r.url, resp.Status)
	}
	doc, err := jwkutil.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", r.url, err)
	}
	keys, err := ParseKeys(doc)
	if err != nil {
		return nil, 0, fmt.Errorf("GET %s: %w", r.url, err)
	}
	return keys, lifetimeOf(resp.Header, time.Now()), nil
}

// lifetimeOf reads how long a response is fresh from its Cache-Control
// max-age, else its Expires, bounded to [minKeysLifetime,
// maxKeysLifetime]; defaultKeysLifetime if it says neither (or in a form
// not understood).
func lifetimeOf(h http.Header, now time.Time) time.Duration {
	d := time.Duration(-1)
	for _, directive := range strings.Split(h.Get("Cache-Control"), ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(strings.ToLower(directive)), "max-age=")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 && n < 1<<31 {
			d = time.Duration(n) * time.Second
		}
	}
	if d < 0 {
		if t, err := http.ParseTime(h.Get("Expires")); err == nil {
			d = t.Sub(now)
		}
	}
	switch {
	case d < 0:
		return defaultKeysLifetime
	case d < minKeysLifetime:
		return minKeysLifetime
	case d > maxKeysLifetime:
		return maxKeysLifetime
	}
	return d
}
