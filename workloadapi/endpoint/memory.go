package endpoint

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// MemoryConfig configures NewMemoryHandler.
type MemoryConfig struct {
	// Key maps a caller to the key its Snapshot is stored under. Callers
	// with equal keys see the same Snapshot. Nil means [KeyByUID].
	Key func(Caller) string

	// SignJWT mints a JWT-SVID for id and audience, for example with
	// ca.JWTAuthority.SignJWTSVID. A caller may get JWT-SVIDs for the IDs of
	// its Snapshot's X509-SVIDs, each with the hint of its X509-SVID. Nil
	// means callers hold no JWT-SVIDs: FetchJWTSVID answers
	// PermissionDenied.
	SignJWT func(ctx context.Context, id spiffeid.ID, audience []string) (string, error)
}

// KeyByUID is the default key of a MemoryHandler: the caller's UID in
// decimal, or "" for a caller without kernel credentials (a TCP caller).
func KeyByUID(c Caller) string {
	if !c.HasCredentials() {
		return ""
	}
	return strconv.Itoa(c.UID)
}

// MemoryHandler is a Handler holding one Snapshot per key in memory, for
// tests and for programs that compute views themselves. Set replaces a
// view and wakes every stream watching it at once, without per-stream work
// under the lock: each key's watchers share one channel, closed on change.
//
// It is safe for concurrent use. The zero value is not usable; call
// NewMemoryHandler.
type MemoryHandler struct {
	key     func(Caller) string
	signJWT func(ctx context.Context, id spiffeid.ID, audience []string) (string, error)

	mu    sync.RWMutex
	views map[string]*view // guarded by mu; each view is immutable
}

// view is one key's Snapshot and the channel closed when it is replaced.
type view struct {
	snap    *Snapshot
	changed chan struct{}
}

var _ Handler = (*MemoryHandler)(nil)

// NewMemoryHandler returns an empty handler: every caller is denied until
// Set gives its key a Snapshot.
func NewMemoryHandler(cfg MemoryConfig) *MemoryHandler {
	if cfg.Key == nil {
		cfg.Key = KeyByUID
	}
	return &MemoryHandler{key: cfg.Key, signJWT: cfg.SignJWT, views: make(map[string]*view)}
}

// Set gives the callers under key the view snap, replacing the one they
// had; open streams are woken and send it if it differs from what they
// sent. A nil snap removes the view: open streams end with
// PermissionDenied. Set fails, changing nothing, when snap is not valid
// (see Snapshot.Validate). snap must not be modified afterwards.
func (h *MemoryHandler) Set(key string, snap *Snapshot) error {
	if snap != nil {
		if err := snap.Validate(); err != nil {
			return err
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.views[key]
	if snap == nil {
		delete(h.views, key)
	} else {
		h.views[key] = &view{snap: snap, changed: make(chan struct{})}
	}
	if old != nil {
		close(old.changed)
	}
	return nil
}

// Snapshot returns the view stored under key, or nil.
func (h *MemoryHandler) Snapshot(key string) *Snapshot {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if v := h.views[key]; v != nil {
		return v.snap
	}
	return nil
}

func (h *MemoryHandler) current(key string) *view {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.views[key]
}

// Subscribe returns the caller's view; an error wrapping ErrNoIdentity when
// its key has none.
func (h *MemoryHandler) Subscribe(_ context.Context, caller Caller) (Subscription, error) {
	key := h.key(caller)
	if h.current(key) == nil {
		return nil, fmt.Errorf("%w: no view for key %q", ErrNoIdentity, key)
	}
	return &memorySubscription{h: h, key: key}, nil
}

// FetchJWTSVIDs mints one JWT-SVID per X509-SVID ID of the caller's view
// (or only params.ID) with MemoryConfig.SignJWT.
func (h *MemoryHandler) FetchJWTSVIDs(ctx context.Context, caller Caller, params JWTSVIDParams) ([]JWTSVID, error) {
	key := h.key(caller)
	v := h.current(key)
	if v == nil || h.signJWT == nil {
		return nil, fmt.Errorf("%w: no JWT-SVID for key %q", ErrNoIdentity, key)
	}
	var out []JWTSVID
	seen := make(map[spiffeid.ID]bool)
	for id, hint := range v.snap.x509IDs() {
		if seen[id] || (!params.ID.IsZero() && id != params.ID) {
			continue
		}
		seen[id] = true
		token, err := h.signJWT(ctx, id, params.Audience)
		if err != nil {
			return nil, fmt.Errorf("endpoint: minting a JWT-SVID for %q: %w", id, err)
		}
		out = append(out, JWTSVID{ID: id, Token: token, Hint: hint})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %q not held", ErrNoIdentity, params.ID)
	}
	return out, nil
}

// memorySubscription follows one key of a MemoryHandler.
type memorySubscription struct {
	h       *MemoryHandler
	key     string
	changed <-chan struct{} // the channel of the view Snapshot last returned
}

func (s *memorySubscription) Snapshot() *Snapshot {
	v := s.h.current(s.key)
	if v == nil {
		s.changed = nil
		return nil
	}
	s.changed = v.changed
	return v.snap
}

func (s *memorySubscription) Changed() <-chan struct{} { return s.changed }

func (s *memorySubscription) Close() {}
