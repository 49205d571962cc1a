package exchange

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/internal/jwkutil"
)

// Bounds of an issuer's key cache.
const (
	// MaxDiscoverySize bounds a discovery document, in bytes.
	MaxDiscoverySize = 64 << 10
	// keysLifetime is how long fetched keys are used before they are
	// fetched again.
	keysLifetime = time.Hour
	// maxStale is how long keys past keysLifetime are still used while
	// fetching fails.
	maxStale = 24 * time.Hour
	// refetchInterval is the least time between two fetches of one
	// issuer's keys, so that tokens naming made-up key IDs, or an issuer
	// that is down, cannot make the endpoint fetch at their rate.
	refetchInterval = 30 * time.Second
	// fetchTimeout bounds the default client's requests.
	fetchTimeout = 10 * time.Second
)

// Errors of the key cache, wrapped with detail; they reach the log only.
var (
	errUnknownKey  = errors.New("no key of the token's key ID")
	errUnavailable = errors.New("the issuer's keys could not be fetched")
)

// issuer is a trusted issuer with its key cache: the discovery document and
// the JWK Set it names, fetched when a token needs them, again once older
// than keysLifetime, and again (at most once per refetchInterval) when a
// token names a key ID they lack, as issuers publish a new key before they
// sign with it. Keys are read without a lock; fetches are serialised, one
// at a time per issuer.
type issuer struct {
	cfg    Issuer
	client *http.Client
	now    func() time.Time

	keys  atomic.Pointer[keySnapshot]
	fetch chan struct{} // held while fetching; guards tried
	tried time.Time     // of the last fetch, failed or not
}

// keySnapshot is an issuer's keys as last fetched.
type keySnapshot struct {
	keys    map[string]crypto.PublicKey
	fetched time.Time
}

func newIssuer(cfg Issuer, now func() time.Time) *issuer {
	var c http.Client
	if cfg.Client != nil {
		c = *cfg.Client
	} else {
		c.Timeout = fetchTimeout
	}
	// A redirect could lead the fetch anywhere; issuers publish at their
	// own URLs.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &issuer{cfg: cfg, client: &c, now: now, fetch: make(chan struct{}, 1)}
}

// key returns the issuer's key of ID kid.
func (is *issuer) key(ctx context.Context, kid string) (crypto.PublicKey, error) {
	now := is.now()
	s := is.keys.Load()
	if s.fresh(now) {
		if k, ok := s.keys[kid]; ok {
			return k, nil
		}
	}
	select {
	case is.fetch <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-is.fetch }()
	s = is.keys.Load() // another request may have fetched meanwhile
	if s.fresh(now) {
		if k, ok := s.keys[kid]; ok {
			return k, nil
		}
	}
	if is.tried.IsZero() || now.Sub(is.tried) >= refetchInterval || now.Before(is.tried) {
		is.tried = now
		keys, err := is.fetchKeys(ctx)
		if err == nil {
			s = &keySnapshot{keys: keys, fetched: now}
			is.keys.Store(s)
		} else if s == nil || now.Sub(s.fetched) > keysLifetime+maxStale {
			return nil, fmt.Errorf("%w: %w", errUnavailable, err)
		}
	}
	if s == nil || now.Sub(s.fetched) > keysLifetime+maxStale {
		return nil, errUnavailable
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", errUnknownKey, kid)
}

func (s *keySnapshot) fresh(now time.Time) bool {
	return s != nil && now.Sub(s.fetched) < keysLifetime && !now.Before(s.fetched)
}

// fetchKeys fetches the discovery document, then the JWK Set it names.
func (is *issuer) fetchKeys(ctx context.Context) (map[string]crypto.PublicKey, error) {
	doc, err := is.get(ctx, discoveryURL(is.cfg.URL), MaxDiscoverySize)
	if err != nil {
		return nil, err
	}
	jwksURI, err := ParseDiscovery(doc, is.cfg.URL)
	if err != nil {
		return nil, err
	}
	set, err := is.get(ctx, jwksURI, jwkutil.MaxDocumentSize)
	if err != nil {
		return nil, err
	}
	return ParseKeySet(set)
}

// discoveryURL is where an issuer's discovery document is (OpenID Connect
// Discovery 1.0 §4: the issuer with any trailing '/' removed, then the
// well-known path).
func discoveryURL(iss string) string {
	for len(iss) > 0 && iss[len(iss)-1] == '/' {
		iss = iss[:len(iss)-1]
	}
	return iss + "/.well-known/openid-configuration"
}

// get fetches u, reading at most max bytes.
func (is *issuer) get(ctx context.Context, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	// Fetches are rare (hourly): a connection kept idle between them would
	// only hold a socket and goroutines.
	req.Close = true
	resp, err := is.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", u, max)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", u, max)
	}
	return b, nil
}

// ParseDiscovery reads an OpenID Connect discovery document and returns its
// jwks_uri. The document's "issuer" must be iss exactly (OpenID Connect
// Discovery 1.0 §4.3), and jwks_uri an https URL. A document of more than
// [MaxDiscoverySize] bytes is refused.
func ParseDiscovery(doc []byte, iss string) (string, error) {
	if len(doc) > MaxDiscoverySize {
		return "", fmt.Errorf("discovery document is larger than %d bytes", MaxDiscoverySize)
	}
	var d struct {
		Issuer  *string `json:"issuer"`
		JWKSURI *string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return "", fmt.Errorf("discovery document: %w", err)
	}
	switch {
	case d.Issuer == nil || *d.Issuer != iss:
		return "", fmt.Errorf("discovery document names another issuer than %q", iss)
	case d.JWKSURI == nil:
		return "", errors.New("discovery document has no jwks_uri")
	}
	u, err := url.Parse(*d.JWKSURI)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return "", errors.New("discovery document's jwks_uri is not an https URL")
	}
	return u.String(), nil
}

// ParseKeySet reads a JWK Set and returns its public signing keys by key
// ID: keys without a "kid", of another use than "sig", or of a type the
// endpoint cannot use are skipped; a set holding private or symmetric keys,
// two keys of one ID, or no usable key, is refused. At most
// [jwkutil.MaxDocumentSize] bytes and [jwkutil.MaxKeys] keys.
func ParseKeySet(doc []byte) (map[string]crypto.PublicKey, error) {
	set, err := jwkutil.Decode(doc)
	if err != nil {
		return nil, fmt.Errorf("JWK Set: %w", err)
	}
	keys := make(map[string]crypto.PublicKey, len(set.Keys))
	for i := range set.Keys {
		e := &set.Keys[i]
		if e.KeyID == "" || e.Use != "" && e.Use != "sig" {
			continue
		}
		pub, err := e.PublicKey()
		if err != nil {
			continue
		}
		if _, dup := keys[e.KeyID]; dup {
			return nil, fmt.Errorf("JWK Set has two keys of ID %q", e.KeyID)
		}
		keys[e.KeyID] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("JWK Set has no signing key with a key ID")
	}
	return keys, nil
}
