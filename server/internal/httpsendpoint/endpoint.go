// Package httpsendpoint serves one HTTP handler over HTTPS on a listener
// of its own, as an issuing server serves its bundle endpoint and its
// token exchange endpoint: TLS 1.2 and 1.3 with ECDHE and AEAD suites
// only, no client authentication, short timeouts for every phase of a
// request, and a graceful shutdown.
package httpsendpoint

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
)

// Timeouts of the endpoint's HTTP server. What it serves (a bundle, a
// token) is small, so every phase of a request is short.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 5 * time.Second
)

// cipherSuites are the TLS 1.2 suites of the endpoint.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// Endpoint is a handler served over HTTPS on a listener of its own.
type Endpoint struct {
	lis  net.Listener
	srv  *http.Server
	name string // in errors
}

// Listen binds addr (host:port) and prepares the HTTPS server of h,
// which presents the certificate getCert returns, called in every
// handshake. name says what the endpoint is in errors ("bundle
// endpoint"); log receives the HTTP server's own errors, at debug level.
// Serve serves; Close releases the listener.
func Listen(addr, name string, h http.Handler, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), log *slog.Logger) (*Endpoint, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server: %s: %w", name, err)
	}
	return &Endpoint{
		lis:  lis,
		name: name,
		srv: &http.Server{
			Handler: h,
			TLSConfig: &tls.Config{
				// Fed rule 7: Mozilla "intermediate": TLS 1.2 and 1.3,
				// ECDHE with AEAD suites only (TLS 1.3 suites are all
				// AEAD and not configurable).
				MinVersion:   tls.VersionTLS12,
				CipherSuites: cipherSuites,
				// Fed rule 9: no client authentication of any kind.
				ClientAuth:     tls.NoClientCert,
				GetCertificate: getCert,
			},
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readTimeout,
			WriteTimeout:      writeTimeout,
			IdleTimeout:       idleTimeout,
			MaxHeaderBytes:    maxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}, nil
}

// Addr returns the address the endpoint listens on.
func (e *Endpoint) Addr() net.Addr { return e.lis.Addr() }

// Close closes the listener, for an endpoint that Serve never served;
// once Serve has returned, the listener is closed already and Close
// returns net.ErrClosed.
func (e *Endpoint) Close() error { return e.lis.Close() }

// Serve serves until ctx is done, then shuts down gracefully (for at most
// a few seconds) and returns nil; it returns the error that stopped it
// otherwise.
func (e *Endpoint) Serve(ctx context.Context) error {
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
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if err := e.srv.Shutdown(sctx); err != nil {
			_ = e.srv.Close()
		}
	})
	err := e.srv.ServeTLS(e.lis, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("server: %s: %w", e.name, err)
}
