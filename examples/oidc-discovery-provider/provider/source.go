package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/logger"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// A Source keeps a KeySet up to date with the trust domain's JWT
// authorities until ctx is done. The CA publishes a new key in the
// bundle before it signs with it, and keeps an old one there until what
// it signed has expired (ca/rotation): a source that follows the bundle
// closely publishes keys on that schedule.
type Source interface {
	Run(ctx context.Context, keys *KeySet) error
}

// WorkloadAPISource follows the JWT bundles stream of an agent's Workload
// API: every change of the bundle reaches the key set as the agent pushes
// it. The provider's process must have an identity at the agent.
type WorkloadAPISource struct {
	Addr        string
	TrustDomain spiffeid.TrustDomain
	Log         *slog.Logger
}

// Run watches the bundles until ctx is done, reconnecting with backoff.
func (s *WorkloadAPISource) Run(ctx context.Context, keys *KeySet) error {
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(s.Addr), workloadapi.WithLogger(logger.Slog(s.Log)))
	if err != nil {
		return fmt.Errorf("workload API: %w", err)
	}
	defer c.Close()
	err = c.WatchJWTBundles(ctx, &bundleWatcher{td: s.TrustDomain, keys: keys, log: s.Log})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("workload API: %w", err)
}

type bundleWatcher struct {
	td   spiffeid.TrustDomain
	keys *KeySet
	log  *slog.Logger
}

func (w *bundleWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	b, ok := set.Get(w.td)
	if !ok {
		w.log.Warn("the Workload API gave no bundle for the trust domain; keeping the keys", "trust_domain", w.td.Name())
		return
	}
	update(w.keys, b, w.log)
}

func (w *bundleWatcher) OnJWTBundlesWatchError(err error) {
	w.log.Warn("Workload API stream failed; keeping the keys and retrying", "err", err)
}

// update puts b into keys, logging a change of key IDs.
func update(keys *KeySet, b *jwtbundle.Bundle, log *slog.Logger) {
	before := keys.KeyIDs()
	if err := keys.Set(b); err != nil {
		log.Error("cannot publish the bundle's keys; keeping the previous ones", "err", err)
		return
	}
	if after := keys.KeyIDs(); !equalStrings(before, after) || before == nil {
		log.Info("JWKS updated", "key_ids", after)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ServerAPISource reads the trust domain's bundle from the server's admin
// socket every Interval. The provider's process must run as root or as
// the server's uid.
type ServerAPISource struct {
	Path     string
	Interval time.Duration
	Log      *slog.Logger
}

// Run polls until ctx is done; a failed read is logged and the keys kept.
func (s *ServerAPISource) Run(ctx context.Context, keys *KeySet) error {
	c := admin.Dial(s.Path)
	defer c.Close()
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if err := s.poll(ctx, c, keys); err != nil && ctx.Err() == nil {
			s.Log.Warn("cannot read the bundle from the server; keeping the keys", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (s *ServerAPISource) poll(ctx context.Context, c *admin.Client, keys *KeySet) error {
	ctx, cancel := context.WithTimeout(ctx, s.Interval)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	doc, err := c.Bundle(ctx, admin.FormatSPIFFE)
	if err != nil {
		return err
	}
	b, err := spiffebundle.Parse(st.TrustDomain, doc)
	if err != nil {
		return err
	}
	jb := jwtbundle.FromJWTAuthorities(st.TrustDomain, b.JWTAuthorities())
	if jb.Empty() {
		return errors.New("the server's bundle holds no JWT key")
	}
	update(keys, jb, s.Log)
	return nil
}
