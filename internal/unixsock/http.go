package unixsock

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// HTTP is an HTTP API that [ServeHTTP] serves on a unix socket.
type HTTP struct {
	// Handler answers the requests.
	Handler http.Handler
	// ConnContext, if not nil, derives each connection's context (where
	// the servers keep what the kernel says of the peer).
	ConnContext func(context.Context, net.Conn) context.Context
	// MaxHeaderBytes bounds a request's header.
	MaxHeaderBytes int
	// Log receives the HTTP server's own errors, at debug level.
	Log *slog.Logger
	// ShutdownGrace is how long requests in flight may finish once the
	// context is done.
	ShutdownGrace time.Duration
}

// ServeHTTP serves api on lis until ctx is done, then shuts down
// gracefully: it stops accepting, waits up to api.ShutdownGrace for
// requests in flight, closes lis and returns nil. It returns early with
// lis's error when lis fails. Requests get ctx's values, never its
// cancellation, so that those in flight finish. The server bounds the time
// to read a request's header (10 s), the whole request (1 min) and an idle
// connection (2 min).
func ServeHTTP(ctx context.Context, lis net.Listener, api HTTP) error {
	hs := &http.Server{
		Handler:           api.Handler,
		ConnContext:       api.ConnContext,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    api.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(api.Log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), api.ShutdownGrace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc // http.ErrServerClosed once Shutdown or Close has run
	return nil
}
