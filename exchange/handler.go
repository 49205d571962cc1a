package exchange

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/spiffekit/spiffekit/internal/jwtutil"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Response is a successful token exchange response (RFC 8693 §2.2.1).
type Response struct {
	// AccessToken is the SVID: a JWT-SVID, or an X509-SVID's chain as PEM
	// CERTIFICATE blocks, leaf first.
	AccessToken string `json:"access_token"`
	// IssuedTokenType is TokenTypeJWT or TokenTypeX509SVID.
	IssuedTokenType string `json:"issued_token_type"`
	// TokenType is "Bearer" for a JWT-SVID and "N_A" for an X509-SVID,
	// which is no access token (RFC 8693 §2.2.1).
	TokenType string `json:"token_type"`
	// ExpiresIn is the SVID's remaining lifetime, in seconds.
	ExpiresIn int64 `json:"expires_in"`
	// SPIFFEID is the SVID's SPIFFE ID.
	SPIFFEID string `json:"spiffe_id"`
}

// Error codes beside RFC 6749's, and the fixed descriptions of refusals.
const (
	// codeInvalidTarget is RFC 8693 §2.2.2's code for a target (here an
	// audience or a SPIFFE ID) the endpoint will not issue for.
	codeInvalidTarget = "invalid_target"
	descToken         = "the subject token is not acceptable"
	descNoEntry       = "no identity is registered for the subject token"
	descSeveral       = "several identities are registered for the subject token; name one with spiffe_id"
	descNotEntry      = "the spiffe_id asked for is not registered for the subject token"
)

// Errors of Exchange that are not the caller's mistake in the request's
// form. Callers branch on them with errors.Is.
var (
	// ErrRateLimited is returned when a rate limit refuses an exchange.
	ErrRateLimited = errors.New("exchange: rate limited")
	// ErrNotAuthorized is returned when no entry lets the token's subject
	// have the identity asked for, or several do and none was named.
	ErrNotAuthorized = errors.New("exchange: not authorized")
	// ErrInvalidToken is returned when the subject token is refused.
	ErrInvalidToken = errors.New("exchange: invalid subject token")
	// ErrInvalidRequest is returned by Exchange for a Request that asks
	// for nothing it can mint.
	ErrInvalidRequest = errors.New("exchange: invalid request")
)

// ServeHTTP serves one token exchange: a POST of a form body. It answers
// RFC 6749 §5.2 errors with fixed descriptions and logs the reason.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request", "use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestSize))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("the body is unreadable or larger than %d bytes", MaxRequestSize))
		return
	}
	req, err := ParseRequest(body)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			writeError(w, http.StatusBadRequest, re.code, re.msg)
		} else {
			writeError(w, http.StatusBadRequest, "invalid_request", "bad request")
		}
		h.log.Warn("token exchange refused", "reason", err.Error(), "remote", r.RemoteAddr)
		return
	}
	resp, err := h.exchange(r.Context(), req, r.RemoteAddr)
	switch {
	case err == nil:
		b, err := json.Marshal(resp)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "server_error", "internal error")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		w.Write(b)
	case errors.Is(err, ErrRateLimited):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "temporarily_unavailable", "too many requests")
	case errors.Is(err, ErrInvalidToken):
		writeError(w, http.StatusBadRequest, "invalid_request", descToken)
	case errors.Is(err, ErrNotAuthorized):
		var ae *authzError
		if errors.As(err, &ae) {
			writeError(w, http.StatusBadRequest, ae.code, ae.desc)
		} else {
			writeError(w, http.StatusBadRequest, "invalid_request", descNoEntry)
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "request ended")
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "internal error")
	}
}

// authzError is a refusal by the registry, with its OAuth code.
type authzError struct{ code, desc string }

func (e *authzError) Error() string { return e.desc }

func notAuthorized(code, desc string) error {
	return fmt.Errorf("%w: %w", ErrNotAuthorized, &authzError{code, desc})
}

// Exchange verifies req's subject token, finds the entry that lets its
// subject have an SVID, and mints it. req is what [ParseRequest] returns:
// a TokenType of TokenTypeJWT with an Audience, or of TokenTypeX509SVID
// with a PublicKey; another is refused with an error wrapping
// ErrInvalidRequest. Errors wrap ErrInvalidToken, ErrNotAuthorized or
// ErrRateLimited when the exchange is refused; any other is the minter's
// or the context's. Every call but an invalid request is logged once.
func (h *Handler) Exchange(ctx context.Context, req Request) (Response, error) {
	switch {
	case req.TokenType == TokenTypeJWT && len(req.Audience) > 0:
	case req.TokenType == TokenTypeX509SVID && req.PublicKey != nil:
	default:
		return Response{}, fmt.Errorf("%w: a JWT-SVID needs an audience, an X509-SVID a public key", ErrInvalidRequest)
	}
	return h.exchange(ctx, req, "")
}

func (h *Handler) exchange(ctx context.Context, req Request, remote string) (Response, error) {
	log := h.log
	if remote != "" {
		log = log.With("remote", remote)
	}
	if !h.global.Allow() {
		log.Warn("token exchange refused", "reason", "global rate limit")
		return Response{}, ErrRateLimited
	}
	if req.SubjectTokenType == TokenTypeLaunchHandle {
		return h.redeem(ctx, req, log)
	}
	id, is, err := h.verify(ctx, req.SubjectToken)
	if err != nil {
		args := []any{"reason", err.Error()}
		if is != nil {
			args = append(args, "issuer", is.cfg.URL)
		}
		log.Warn("token exchange refused", args...)
		if errors.Is(err, errToken) {
			return Response{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
		}
		return Response{}, err
	}
	log = log.With("issuer", id.issuer, "subject", id.subject)
	entry, err := h.entryFor(id, req.SPIFFEID)
	if err != nil {
		log.Warn("token exchange refused", "reason", err.Error(), "spiffe_id", req.SPIFFEID.String())
		return Response{}, err
	}
	if !h.subjects.allow(id.issuer, id.subject) {
		log.Warn("token exchange refused", "reason", "subject rate limit", "spiffe_id", entry.SPIFFEID.String())
		return Response{}, ErrRateLimited
	}
	resp, attrs, err := h.mint(ctx, entry, req, 0)
	if err != nil {
		log.Error("token exchange failed", "spiffe_id", entry.SPIFFEID.String(), "entry_id", entry.ID, "err", err)
		return Response{}, fmt.Errorf("exchange: minting %s: %w", entry.SPIFFEID, err)
	}
	log.Info("token exchanged", append([]any{"spiffe_id", resp.SPIFFEID, "entry_id", entry.ID, "svid_type", svidType(req.TokenType)}, attrs...)...)
	return resp, nil
}

// redeem trades a launch handle for the SVID of the entry it names. What
// would make the request fail before signing (a spiffe_id other than the
// launch's, an ID that may not be issued, an expired launch) is checked
// before the handle is spent, which leaves it usable for a request that
// can be honoured; a failure after (the signature) spends it: the
// launcher launches again. The SVID never outlives the entry.
func (h *Handler) redeem(ctx context.Context, req Request, log *slog.Logger) (Response, error) {
	log = log.With("subject_token_type", "launch_handle")
	if h.handles == nil {
		log.Warn("token exchange refused", "reason", "launch handles are not accepted")
		return Response{}, fmt.Errorf("%w: launch handles are not accepted", ErrInvalidToken)
	}
	check := func(e registry.Entry) error { return h.redeemable(e, req) }
	entry, err := h.handles.Redeem(ctx, req.SubjectToken, check)
	if err == nil {
		// Again, after: a redeemer that skipped check is not trusted
		// with what check refuses.
		err = check(entry)
	}
	if err != nil {
		args := []any{"reason", err.Error()}
		if !entry.SPIFFEID.IsZero() {
			args = append(args, "entry_id", entry.ID, "spiffe_id", entry.SPIFFEID.String())
		}
		if !req.SPIFFEID.IsZero() {
			args = append(args, "requested_spiffe_id", req.SPIFFEID.String())
		}
		log.Warn("token exchange refused", args...)
		return Response{}, err
	}
	log = log.With("entry_id", entry.ID)
	limit := time.Duration(0)
	if !entry.ExpiresAt.IsZero() {
		limit = entry.ExpiresAt.Sub(h.now()) // positive: check refused the expired
	}
	resp, attrs, err := h.mint(ctx, entry, req, limit)
	if err != nil {
		log.Error("token exchange failed", "spiffe_id", entry.SPIFFEID.String(), "err", err)
		return Response{}, fmt.Errorf("exchange: minting %s: %w", entry.SPIFFEID, err)
	}
	log.Info("token exchanged", append([]any{"spiffe_id", resp.SPIFFEID, "svid_type", svidType(req.TokenType)}, attrs...)...)
	return resp, nil
}

// redeemable refuses a launch's entry whose SVID req cannot have: an ID
// that may not be issued, one other than the spiffe_id asked for, or an
// entry that has expired.
func (h *Handler) redeemable(e registry.Entry, req Request) error {
	switch {
	case !e.SPIFFEID.MemberOf(h.td) || registry.Reserved(e.SPIFFEID):
		// A redeemer that let a reserved or foreign ID through is not
		// trusted with it.
		return fmt.Errorf("%w: the launch's SPIFFE ID %s may not be issued", notAuthorized("invalid_request", descNoEntry), e.SPIFFEID)
	case !req.SPIFFEID.IsZero() && req.SPIFFEID != e.SPIFFEID:
		return fmt.Errorf("%w: spiffe_id is not the launch's", notAuthorized(codeInvalidTarget, descNotEntry))
	case !e.ExpiresAt.IsZero() && !h.now().Before(e.ExpiresAt):
		return fmt.Errorf("%w: the launch expired", ErrInvalidToken)
	}
	return nil
}

// svidTTL is the lifetime of an SVID of an entry whose TTL is ttl (zero:
// the minter's default) that must end within limit (zero: no bound).
func svidTTL(ttl, limit time.Duration) time.Duration {
	if limit > 0 && (ttl == 0 || ttl > limit) {
		return limit
	}
	return ttl
}

func svidType(tokenType string) string {
	if tokenType == TokenTypeX509SVID {
		return "x509"
	}
	return "jwt"
}

// entryFor returns the entry that lets id have an SVID: one parented by
// ParentID whose selectors are all id's, of SPIFFE ID want if want is not
// zero. Entries of a reserved SPIFFE ID are never used (the index leaves
// them out already; a registry that did not is not trusted with them).
func (h *Handler) entryFor(id identity, want spiffeid.ID) (registry.Entry, error) {
	var found []registry.Entry
	for _, e := range h.entries.ForWorkload(id.selectors) {
		if e.ParentID != h.parent || registry.Reserved(e.SPIFFEID) || e.SPIFFEID.TrustDomain() != h.td {
			continue
		}
		if !want.IsZero() && e.SPIFFEID != want {
			continue
		}
		if len(found) > 0 && found[0].SPIFFEID == e.SPIFFEID {
			continue // two entries of one ID: either gives the same SVID
		}
		found = append(found, e)
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return registry.Entry{}, notAuthorized(codeInvalidTarget, descSeveral)
	case !want.IsZero():
		return registry.Entry{}, notAuthorized(codeInvalidTarget, descNotEntry)
	}
	return registry.Entry{}, notAuthorized("invalid_request", descNoEntry)
}

// mint signs the SVID of entry that req asks for, to end within limit
// unless limit is zero, and returns the response with the attributes of
// the audit line.
func (h *Handler) mint(ctx context.Context, entry registry.Entry, req Request, limit time.Duration) (Response, []any, error) {
	resp := Response{IssuedTokenType: req.TokenType, SPIFFEID: entry.SPIFFEID.String()}
	now := h.now()
	if req.TokenType == TokenTypeX509SVID {
		chain, err := h.minter.MintX509SVID(ctx, entry.SPIFFEID, req.PublicKey, entry.DNSNames, svidTTL(entry.X509SVIDTTL, limit))
		if err != nil {
			return Response{}, nil, err
		}
		if len(chain) == 0 {
			return Response{}, nil, errors.New("no certificate")
		}
		var pemChain []byte
		for _, c := range chain {
			pemChain = append(pemChain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		resp.AccessToken, resp.TokenType = string(pemChain), "N_A"
		resp.ExpiresIn = expiresIn(now, chain[0].NotAfter)
		return resp, []any{"serial", chain[0].SerialNumber.Text(16), "expires_at", chain[0].NotAfter.UTC()}, nil
	}
	token, err := h.minter.MintJWTSVID(ctx, entry.SPIFFEID, req.Audience, svidTTL(entry.JWTSVIDTTL, limit))
	if err != nil {
		return Response{}, nil, err
	}
	exp, err := jwtExpiry(token)
	if err != nil {
		return Response{}, nil, err
	}
	resp.AccessToken, resp.TokenType = token, "Bearer"
	resp.ExpiresIn = expiresIn(now, exp)
	return resp, []any{"audience", req.Audience, "expires_at", exp.UTC()}, nil
}

func expiresIn(now, exp time.Time) int64 {
	return max(int64(exp.Sub(now)/time.Second), 0)
}

// writeError writes an RFC 6749 §5.2 error response.
func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
	w.Write(b)
}

// jwtExpiry reads the expiry of a JWT-SVID the minter signed.
func jwtExpiry(token string) (time.Time, error) {
	tok, err := jwt.ParseSigned(token, jwtutil.Algorithms())
	if err != nil {
		return time.Time{}, fmt.Errorf("minted JWT-SVID: %w", err)
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil || c.Expiry == nil {
		return time.Time{}, errors.New("minted JWT-SVID has no expiry")
	}
	return c.Expiry.Time(), nil
}
