package launch

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/unixsock"
)

// ShutdownGrace bounds how long Serve waits, once its ctx is done, for
// requests in flight.
const ShutdownGrace = 5 * time.Second

// codeTooManyLive is the error code of a launch refused for
// ErrTooManyLive.
const codeTooManyLive = "too_many_launches"

// requestTimeout bounds the work of one request.
const requestTimeout = 20 * time.Second

// launchJSON is the answer to POST /v1/launches.
type launchJSON struct {
	ID          string    `json:"id"`
	SPIFFEID    string    `json:"spiffe_id"`
	Handle      string    `json:"handle"`
	ExpiresAt   time.Time `json:"expires_at"`
	X509SVIDTTL string    `json:"x509_svid_ttl"`
	JWTSVIDTTL  string    `json:"jwt_svid_ttl"`
	// X509Authorities are the trust domain's X.509 authorities as PEM
	// CERTIFICATE blocks; absent without Config.X509Authorities.
	X509Authorities string `json:"x509_authorities,omitempty"`
	// JWTAuthorities are the trust domain's JWT authorities as an RFC 7517
	// JWK Set (a JWT bundle); absent without Config.JWTAuthorities.
	JWTAuthorities json.RawMessage `json:"jwt_authorities,omitempty"`
	// WITAuthorities are the trust domain's WIT authorities as an RFC 7517
	// JWK Set (a WIT bundle); absent without Config.WITAuthorities.
	WITAuthorities json.RawMessage `json:"wit_authorities,omitempty"`
}

// infoJSON is the answer to GET /v1/launches/{id}.
type infoJSON struct {
	ID        string    `json:"id"`
	SPIFFEID  string    `json:"spiffe_id"`
	Hint      string    `json:"hint,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	Redeemed  bool      `json:"redeemed"`
}

// Serve answers launcher API requests on lis (a unix socket: see
// [Listen]) until ctx is done, then shuts down gracefully: it stops
// accepting, waits up to [ShutdownGrace] for requests in flight, closes
// lis and returns nil. It returns early, with the error, when lis fails.
// Every connection is identified by its kernel credentials (SO_PEERCRED)
// when accepted; every request of a uid not in Config.AllowedUIDs, or
// whose credentials cannot be read, is answered 403.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	err := unixsock.ServeHTTP(ctx, lis, unixsock.HTTP{Handler: s.Handler(), ConnContext: s.connContext,
		MaxHeaderBytes: 16 << 10, Log: s.log, ShutdownGrace: ShutdownGrace})
	if err != nil {
		return fmt.Errorf("launch: serve: %w", err)
	}
	return nil
}

// Listen listens on a unix socket at path for [Server.Serve]. The socket
// file is mode 0600 when only root and the process's own uid are allowed,
// else 0666: the uid check of every connection is what holds, the mode a
// first fence. A stale socket is removed first; closing the listener
// removes the socket.
func (s *Server) Listen(path string) (net.Listener, error) {
	own := os.Getuid()
	mode := fs.FileMode(0o666)
	if !slices.ContainsFunc(s.allowed, func(uid int) bool { return uid != 0 && uid != own }) {
		mode = 0o600
	}
	lis, err := unixsock.Listen(path, mode)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	return lis, nil
}

// caller is what the kernel told of a connection's process.
type caller struct {
	pid, uid int
	err      error
	allowed  bool
}

type callerKey struct{}

// connContext identifies the process behind a new connection once, and
// logs a refused one once per connection.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	var p caller
	// Only a unix socket carries credentials the kernel vouches for.
	if uc, ok := c.(*net.UnixConn); ok {
		p.pid, p.uid, p.err = unixsock.PeerCredentials(uc)
	} else {
		p.err = fmt.Errorf("%T is not a unix socket connection", c)
	}
	p.allowed = p.err == nil && slices.Contains(s.allowed, p.uid)
	switch {
	case p.err != nil:
		s.log.Warn("launcher connection refused: credentials unreadable", "err", p.err)
	case !p.allowed:
		s.log.Warn("launcher connection refused: uid not allowed", "uid", p.uid, "pid", p.pid)
	}
	return context.WithValue(ctx, callerKey{}, p)
}

// Handler returns the launcher API as an http.Handler:
//
//	POST   /v1/launches       a launch request (see ParseRequest) -> 201 {"id", "spiffe_id", "handle", "expires_at", "x509_svid_ttl", "jwt_svid_ttl", "x509_authorities", "jwt_authorities", "wit_authorities"}
//	GET    /v1/launches/{id}  -> 200 {"id", "spiffe_id", "hint", "expires_at", "redeemed"}
//	DELETE /v1/launches/{id}  ends the launch -> 204
//
// Errors are {"error": code, "message": text} with 400 (invalid), 403
// (permission_denied), 404 (not_found), 429 (rate_limited), 503
// (too_many_launches: Config.MaxLive launches are alive) or 500. A
// request that did not come through Serve has no known caller and is
// refused with 403.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/launches", s.postLaunch)
	mux.HandleFunc("GET /v1/launches/{id}", s.getLaunch)
	mux.HandleFunc("DELETE /v1/launches/{id}", s.deleteLaunch)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(callerKey{}).(caller)
		switch {
		case !ok || p.err != nil:
			writeError(w, http.StatusForbidden, "permission_denied", "launch: permission denied: the caller's credentials could not be read")
			return
		case !p.allowed:
			writeError(w, http.StatusForbidden, "permission_denied", fmt.Sprintf("launch: permission denied: uid %d may not launch", p.uid))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (s *Server) postLaunch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", fmt.Sprintf("launch: the body is unreadable or larger than %d bytes", MaxRequestSize))
		return
	}
	p, err := ParseRequest(body)
	if err == nil {
		var l Launch
		if l, err = s.Launch(r.Context(), p); err == nil {
			var out launchJSON
			if out, err = s.answer(l); err == nil {
				writeJSON(w, http.StatusCreated, out)
				return
			}
			// The launch is made, but its handle cannot be handed with the
			// authorities it goes with: end it, so that no launch is left
			// alive that no one holds.
			if endErr := s.End(r.Context(), l.ID); endErr != nil {
				err = errors.Join(err, endErr)
			}
		}
	}
	s.writeFailure(w, r, err)
}

// answer encodes launch l for the launcher.
func (s *Server) answer(l Launch) (launchJSON, error) {
	var roots []byte
	for _, c := range l.X509Authorities {
		roots = append(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	out := launchJSON{
		ID: l.ID, SPIFFEID: l.SPIFFEID.String(), Handle: l.Handle, ExpiresAt: l.ExpiresAt.UTC(),
		X509SVIDTTL: l.X509SVIDTTL.String(), JWTSVIDTTL: l.JWTSVIDTTL.String(), X509Authorities: string(roots),
	}
	if l.JWTAuthorities != nil {
		jwks, err := jwtbundle.FromJWTAuthorities(s.td, l.JWTAuthorities).Marshal()
		if err != nil {
			return launchJSON{}, fmt.Errorf("launch: the JWT authorities of launch %s: %w", l.ID, err)
		}
		out.JWTAuthorities = jwks
	}
	if l.WITAuthorities != nil {
		jwks, err := witbundle.FromWITAuthorities(s.td, l.WITAuthorities).Marshal()
		if err != nil {
			return launchJSON{}, fmt.Errorf("launch: the WIT authorities of launch %s: %w", l.ID, err)
		}
		out.WITAuthorities = jwks
	}
	return out, nil
}

func (s *Server) getLaunch(w http.ResponseWriter, r *http.Request) {
	info, err := s.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeFailure(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, infoJSON{ID: info.ID, SPIFFEID: info.SPIFFEID.String(), Hint: info.Hint,
		ExpiresAt: info.ExpiresAt.UTC(), Redeemed: info.Redeemed})
}

func (s *Server) deleteLaunch(w http.ResponseWriter, r *http.Request) {
	if err := s.End(r.Context(), r.PathValue("id")); err != nil {
		s.writeFailure(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeFailure answers err: the caller's mistakes with what was wrong,
// the server's own failures with a fixed message (the cause goes to the
// log).
func (s *Server) writeFailure(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, ErrInvalid):
		s.log.Warn("launch refused", append([]any{"reason", err.Error()}, callerAttrs(r.Context())...)...)
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, ErrTooManyLive):
		s.log.Warn("launch refused", append([]any{"reason", err.Error()}, callerAttrs(r.Context())...)...)
		writeError(w, http.StatusServiceUnavailable, codeTooManyLive, err.Error())
	case errors.Is(err, ErrRateLimited):
		s.log.Warn("launch refused", append([]any{"reason", "rate limit"}, callerAttrs(r.Context())...)...)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "rate_limited", err.Error())
	default:
		s.log.Error("launcher request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "launch: internal error")
	}
}

// callerAttrs are the log attributes of the caller of the request of ctx.
func callerAttrs(ctx context.Context) []any {
	if p, ok := ctx.Value(callerKey{}).(caller); ok && p.err == nil {
		return []any{"uid", p.uid, "pid", p.pid}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal", "launch: internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}
