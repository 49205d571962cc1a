package trust

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The shares of the trust domain's bundle that nested servers add beside
// the servers' own: downstreamShare+<digest of the SPIFFE ID> holds the JWT
// keys a downstream server published here (PublishJWTKeys), upstreamShare
// the bundle of this server's upstream server, as it answered the last
// publication, so that a nested server's bundle follows the upstream
// roots and JWT keys between two of its CAs.
const (
	downstreamShare = "downstream:"
	upstreamShare   = "upstream"
)

// Timing of the publication of the JWT keys upstream: at once when they
// change, else every publishInterval; a failure is tried again after
// publishRetry.
const (
	publishInterval = 5 * time.Minute
	publishRetry    = 5 * time.Second
)

// downstreamShareID is the share of the downstream server id: a digest,
// since a SPIFFE ID may be longer than a server ID.
func downstreamShareID(id spiffeid.ID) string {
	sum := sha256.Sum256([]byte(id.String()))
	return downstreamShare + hex.EncodeToString(sum[:16])
}

// PutDownstreamJWTKeys stores the JWT keys of the downstream server id as
// a share of the trust domain's bundle, lasting shareLifetime (the
// downstream server publishes again well before), and merges it at once.
// It implements nodeserver.DownstreamKeys.
func (t *View) PutDownstreamJWTKeys(ctx context.Context, id spiffeid.ID, keys map[string]crypto.PublicKey) error {
	b := spiffebundle.New(t.td)
	for kid, key := range keys {
		if err := b.AddJWTAuthority(kid, key); err != nil {
			return fmt.Errorf("server: JWT key %q of %s: %w", kid, id, err)
		}
	}
	if err := t.putShare(ctx, downstreamShareID(id), b); err != nil {
		return err
	}
	return t.Refresh(ctx)
}

// putShare stores b as the share shareID, lasting shareLifetime.
func (t *View) putShare(ctx context.Context, shareID string, b *spiffebundle.Bundle) error {
	doc, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("server: encoding the bundle: %w", err)
	}
	if err := t.stores.Shares.PutServerBundle(ctx, registry.ServerBundle{ServerID: shareID, Document: doc, ExpiresAt: t.now().Add(shareLifetime)}); err != nil {
		return fmt.Errorf("server: storing the share %s: %w", shareID, err)
	}
	return nil
}

// publishedKeys returns the JWT keys this server publishes upstream: its
// own CA's and those the servers below it published here, not those that
// came from upstream (which would then never lapse).
func (t *View) publishedKeys() map[string]crypto.PublicKey {
	keys := maps.Clone(t.ca.Bundle().JWTAuthorities())
	t.mu.RLock()
	peers := t.peers
	t.mu.RUnlock()
	for _, p := range peers {
		if !strings.HasPrefix(p.ServerID, downstreamShare) {
			continue
		}
		if pb, err := spiffebundle.Parse(t.td, p.Document); err == nil {
			for kid, key := range pb.JWTAuthorities() {
				keys[kid] = key
			}
		}
	}
	return keys
}

// PublishUpstream publishes the server's JWT keys to its upstream server
// when they change, and every publishInterval, and keeps the upstream
// server's bundle as the upstream share, until ctx is done.
func (t *View) PublishUpstream(ctx context.Context, up ca.UpstreamJWTPublisher) {
	updates, unsubscribe := t.Subscribe()
	defer unsubscribe()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last map[string]crypto.PublicKey
	due := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-updates:
		case <-timer.C:
		}
		keys := t.publishedKeys()
		if maps.EqualFunc(keys, last, sameKey) && t.now().Before(due) {
			continue
		}
		wait := publishInterval
		if err := t.publish(ctx, up, keys); err != nil {
			if ctx.Err() != nil {
				return
			}
			t.log.Warn("publishing the JWT keys upstream failed; trying again", "err", err, "retry_in", publishRetry)
			wait = publishRetry
			last = nil
		} else {
			last = keys
		}
		due = t.now().Add(wait)
		timer.Reset(wait)
	}
}

// publish sends keys upstream and stores the answer as the upstream share.
func (t *View) publish(ctx context.Context, up ca.UpstreamJWTPublisher, keys map[string]crypto.PublicKey) error {
	b, err := up.PublishJWTKeys(ctx, keys)
	if err != nil {
		return err
	}
	if b.TrustDomain() != t.td {
		return fmt.Errorf("server: the upstream bundle is of trust domain %q", b.TrustDomain())
	}
	if err := t.putShare(ctx, upstreamShare, b); err != nil {
		return err
	}
	t.log.Debug("published the JWT keys upstream", "keys", len(keys))
	return t.Refresh(ctx)
}

// sameKey reports whether a and b are the same public key.
func sameKey(a, b crypto.PublicKey) bool {
	da, errA := x509.MarshalPKIXPublicKey(a)
	db, errB := x509.MarshalPKIXPublicKey(b)
	return errA == nil && errB == nil && bytes.Equal(da, db)
}
