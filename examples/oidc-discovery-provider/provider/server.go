package provider

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/internal/lifecycle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Server is the provider: the key source, the HTTP(S) server of
// [Handler] and the optional health checks, as the configuration says.
// New starts nothing; Run does it all.
type Server struct {
	cfg    *Config
	log    *slog.Logger
	keys   *KeySet
	source Source

	ready chan struct{}
	addr  net.Addr
}

// New returns the server of cfg, which [ParseConfig] has checked.
func New(cfg *Config, log *slog.Logger) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("provider: no configuration")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log, keys: NewKeySet(cfg.SetKeyUse), ready: make(chan struct{})}
	switch {
	case cfg.WorkloadAPI != nil:
		addr, err := workloadAddr(cfg.WorkloadAPI.SocketPath)
		if err != nil {
			return nil, fmt.Errorf("provider: workload_api.socket_path: %w", err)
		}
		td, err := spiffeid.TrustDomainFromString(cfg.WorkloadAPI.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("provider: workload_api.trust_domain: %w", err)
		}
		s.source = &WorkloadAPISource{Addr: addr, TrustDomain: td, Log: log.With("source", "workload_api")}
	case cfg.ServerAPI != nil:
		p, err := adminPath(cfg.ServerAPI.Address)
		if err != nil {
			return nil, fmt.Errorf("provider: server_api.address: %w", err)
		}
		iv := cfg.ServerAPI.PollInterval.Duration
		if iv <= 0 {
			iv = DefaultPollInterval
		}
		s.source = &ServerAPISource{Path: p, Interval: iv, Log: log.With("source", "server_api")}
	default:
		return nil, errors.New("provider: no key source configured")
	}
	return s, nil
}

// Keys returns the key set the server publishes.
func (s *Server) Keys() *KeySet { return s.keys }

// Ready is closed once the server listens; Addr then returns its address.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the address the documents are served on, once Ready.
func (s *Server) Addr() net.Addr { return s.addr }

// Run listens, follows the key source and serves until ctx is done; then
// it shuts the servers down and returns nil. It fails at once if it
// cannot listen or load the serving certificate.
func (s *Server) Run(ctx context.Context) error {
	var (
		lis  net.Listener
		err  error
		cert *certFiles
	)
	switch {
	case s.cfg.ServingCertFile != nil:
		sc := s.cfg.ServingCertFile
		cert = &certFiles{certPath: sc.CertFilePath, keyPath: sc.KeyFilePath, log: s.log}
		if err := cert.load(); err != nil {
			return fmt.Errorf("provider: serving certificate: %w", err)
		}
		lis, err = net.Listen("tcp", sc.Addr)
	case s.cfg.InsecureAddr != "":
		lis, err = net.Listen("tcp", s.cfg.InsecureAddr)
	default:
		os.Remove(s.cfg.ListenSocketPath) // a stale socket of an earlier run
		lis, err = net.Listen("unix", s.cfg.ListenSocketPath)
	}
	if err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	srv := &http.Server{Handler: NewHandler(s.cfg, s.keys, s.log), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	if cert != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.get}
		lis = tls.NewListener(lis, srv.TLSConfig)
	}
	parts := []func(context.Context) error{
		func(ctx context.Context) error { return s.source.Run(ctx, s.keys) },
		func(ctx context.Context) error { return serveHTTP(ctx, srv, lis) },
	}
	if cert != nil {
		parts = append(parts, func(ctx context.Context) error {
			cert.watch(ctx, s.cfg.ServingCertFile.FileSyncInterval.Duration)
			return nil
		})
	}
	if h := s.cfg.HealthChecks; h != nil {
		hl, err := net.Listen("tcp", net.JoinHostPort("localhost", strconv.Itoa(h.BindPort)))
		if err != nil {
			lis.Close()
			return fmt.Errorf("provider: health checks: %w", err)
		}
		hs := &http.Server{Handler: s.healthHandler(h), ReadHeaderTimeout: 10 * time.Second}
		parts = append(parts, func(ctx context.Context) error { return serveHTTP(ctx, hs, hl) })
	}
	s.addr = lis.Addr()
	s.log.Info("serving", "addr", s.addr.String(), "tls", cert != nil, "domains", s.cfg.Domains)
	close(s.ready)
	return lifecycle.RunAll(ctx, parts...)
}

// serveHTTP serves on lis until ctx is done, then shuts srv down.
func serveHTTP(ctx context.Context, srv *http.Server, lis net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("provider: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}

func (s *Server) healthHandler(h *HealthChecks) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+h.LivePath, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET "+h.ReadyPath, func(w http.ResponseWriter, _ *http.Request) {
		if s.keys.load() == nil {
			http.Error(w, "the keys are not known yet", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}

// certFiles is the serving certificate, read again from its files when
// either changes.
type certFiles struct {
	certPath, keyPath string
	log               *slog.Logger

	mu       sync.RWMutex
	cert     *tls.Certificate
	certMod  time.Time
	keyMod   time.Time
	certSize int64
	keySize  int64
}

func (c *certFiles) load() error {
	ci, err := os.Stat(c.certPath)
	if err != nil {
		return err
	}
	ki, err := os.Stat(c.keyPath)
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cert, c.certMod, c.keyMod, c.certSize, c.keySize = &cert, ci.ModTime(), ki.ModTime(), ci.Size(), ki.Size()
	return nil
}

// changed reports whether either file differs, by modification time or
// size, from what was loaded.
func (c *certFiles) changed() bool {
	ci, err1 := os.Stat(c.certPath)
	ki, err2 := os.Stat(c.keyPath)
	if err1 != nil || err2 != nil {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return !ci.ModTime().Equal(c.certMod) || !ki.ModTime().Equal(c.keyMod) || ci.Size() != c.certSize || ki.Size() != c.keySize
}

// watch reloads the files every interval they changed, until ctx is done;
// a pair that does not load is logged and the previous one kept.
func (c *certFiles) watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.changed() {
			continue
		}
		if err := c.load(); err != nil {
			c.log.Error("cannot load the new serving certificate; keeping the previous one", "err", err)
			continue
		}
		c.log.Info("serving certificate reloaded", "cert_file", c.certPath)
	}
}

func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cert, nil
}
