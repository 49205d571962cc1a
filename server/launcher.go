package server

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/spiffekit/spiffekit/launch"
)

// Launcher configures the server's launcher API (package launch): a
// trusted orchestrator makes, over a unix socket, short-lived entries for
// the sandboxes it starts, and gets a one-time handle for each, which the
// sandbox redeems at the token exchange endpoint (Config.TokenExchange,
// required) for an SVID. The launches' entries expire with their TTL: from
// then on their handles are refused, and the server prunes them
// (Config.EntryPruneInterval).
type Launcher struct {
	// SocketPath is the path of the launcher API's unix socket. Required.
	// Its directory is made if missing.
	SocketPath string

	// Service configures the launches: AllowedUIDs (nil: root and the
	// server's own uid), PathPrefixes, DefaultTTL, MaxTTL, Rate, Burst and
	// MaxLive. The server sets TrustDomain, Entries (its entry store),
	// X509Authorities, JWTAuthorities and WITAuthorities (its trust
	// domain's, from its bundle, handed to the launcher with each launch;
	// no WIT key unless a server of the trust domain signs WIT-SVIDs),
	// Live (the count of its entry index, which sees the launches of every
	// server sharing the store, and leaves out an expired launch from its
	// expiry on, before the index syncs or the pruner deletes it), Logger
	// and Now when not set.
	Service launch.Config
}

// checkLauncherConfig checks what of the launcher settings needs nothing
// opened.
func checkLauncherConfig(cfg *Config) error {
	l := cfg.Launcher
	if l == nil {
		return nil
	}
	switch {
	case l.SocketPath == "":
		return invalidf("the launcher API needs a SocketPath")
	case len(l.SocketPath) > MaxSocketPath:
		return invalidf("the launcher socket path %s is longer than the %d bytes a unix socket allows", l.SocketPath, MaxSocketPath)
	case l.SocketPath == cfg.AdminSocket:
		return invalidf("the admin socket and the launcher API both listen on %s", l.SocketPath)
	case cfg.TokenExchange == nil:
		return invalidf("the launcher API needs the token exchange endpoint (Config.TokenExchange), where sandboxes redeem their handles")
	}
	if err := l.Service.CheckSettings(); err != nil {
		return fmt.Errorf("%w: launcher: %w", ErrInvalidConfig, err)
	}
	return nil
}

// setUpLauncher makes the launch server and binds its socket.
func (s *Server) setUpLauncher() (err error) {
	lc := s.cfg.Launcher.Service
	lc.TrustDomain = s.cfg.TrustDomain
	lc.Entries = s.stores.Entries
	// The trust domain's bundle as the server hands it out, never nil.
	if lc.X509Authorities == nil {
		lc.X509Authorities = func() []*x509.Certificate { return s.trust.Bundle().X509Authorities() }
	}
	if lc.JWTAuthorities == nil {
		lc.JWTAuthorities = func() map[string]crypto.PublicKey { return s.trust.Bundle().JWTAuthorities() }
	}
	if lc.WITAuthorities == nil {
		lc.WITAuthorities = func() map[string]crypto.PublicKey { return s.trust.Bundle().WITAuthorities() }
	}
	if lc.Live == nil {
		idx, parent := s.node.Index(), launch.ParentID(s.cfg.TrustDomain)
		lc.Live = func() int { return idx.CountByParent(parent) }
	}
	if lc.Logger == nil {
		lc.Logger = s.log.With("component", "launcher")
	}
	if lc.Now == nil {
		lc.Now = s.cfg.Now
	}
	if s.launcher, err = launch.New(lc); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.Launcher.SocketPath), 0o755); err != nil {
		return fmt.Errorf("server: launcher socket directory: %w", err)
	}
	if s.launcherLis, err = s.launcher.Listen(s.cfg.Launcher.SocketPath); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// LauncherAddr returns the address of the launcher API's socket, or nil
// when Config.Launcher is nil.
func (s *Server) LauncherAddr() net.Addr {
	if s.launcherLis == nil {
		return nil
	}
	return s.launcherLis.Addr()
}
