package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/logger"
)

// Timeouts of the bundle endpoint's HTTP server. A bundle is small, so
// every phase of a request is short.
const (
	endpointReadHeaderTimeout = 10 * time.Second
	endpointReadTimeout       = 30 * time.Second
	endpointWriteTimeout      = 30 * time.Second
	endpointIdleTimeout       = 2 * time.Minute
	endpointMaxHeaderBytes    = 16 << 10
	endpointShutdownTimeout   = 5 * time.Second
)

// endpointCipherSuites are the TLS 1.2 suites of the bundle endpoint.
var endpointCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// bundleEndpoint serves the trust domain's bundle over HTTPS.
// The token exchange endpoint is served the same way.
type bundleEndpoint struct {
	lis  net.Listener
	srv  *http.Server
	name string // in errors; empty means "bundle endpoint"
}

// newBundleEndpoint binds the bundle endpoint of s's trust domain,
// authenticated as cfg.FederationProfile says.
func (s *Server) newBundleEndpoint() (*bundleEndpoint, error) {
	cfg := s.cfg
	tlsConf := &tls.Config{
		// Fed rule 7: Mozilla "intermediate": TLS 1.2 and 1.3, ECDHE with
		// AEAD suites only (TLS 1.3 suites are all AEAD and not
		// configurable).
		MinVersion:   tls.VersionTLS12,
		CipherSuites: endpointCipherSuites,
		// Fed rule 9: no client authentication of any kind.
		ClientAuth: tls.NoClientCert,
	}
	switch cfg.FederationProfile {
	case ProfileHTTPSSPIFFE:
		// Fed rule 15: the server's own X509-SVID, minted and renewed by
		// the node API (re-minted when the active CA changes).
		tlsConf.GetCertificate = s.node.TLSConfig().GetCertificate
	case ProfileHTTPSWeb:
		// Fed rule 12: a Web PKI certificate, which the caller may renew
		// at any time.
		tlsConf.GetCertificate = cfg.FederationCertificate
	}
	h, err := federation.NewHandler(cfg.TrustDomain, s.trust,
		federation.WithLogger(logger.Slog(s.log.With("component", "bundle_endpoint"))))
	if err != nil {
		return nil, fmt.Errorf("server: bundle endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/{$}", h) // Fed rule 10: the operator's path is "/"
	lis, err := net.Listen("tcp", cfg.FederationBind)
	if err != nil {
		return nil, fmt.Errorf("server: bundle endpoint: %w", err)
	}
	return &bundleEndpoint{
		lis: lis,
		srv: &http.Server{
			Handler:           mux,
			TLSConfig:         tlsConf,
			ReadHeaderTimeout: endpointReadHeaderTimeout,
			ReadTimeout:       endpointReadTimeout,
			WriteTimeout:      endpointWriteTimeout,
			IdleTimeout:       endpointIdleTimeout,
			MaxHeaderBytes:    endpointMaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.With("component", "bundle_endpoint").Handler(), slog.LevelDebug),
		},
	}, nil
}

// serve serves until ctx is done, then shuts down gracefully.
func (e *bundleEndpoint) serve(ctx context.Context) error {
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endpointShutdownTimeout)
		defer cancel()
		if err := e.srv.Shutdown(sctx); err != nil {
			_ = e.srv.Close()
		}
	})
	err := e.srv.ServeTLS(e.lis, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	name := e.name
	if name == "" {
		name = "bundle endpoint"
	}
	return fmt.Errorf("server: %s: %w", name, err)
}
