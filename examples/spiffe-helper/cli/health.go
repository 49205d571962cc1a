package cli

import (
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The write status of a file, as spiffe-helper reports it.
const (
	statusUnwritten = "unwritten"
	statusFailed    = "failed"
	statusWritten   = "written"
)

// x509Status is the key of the X.509 files' status.
const x509Status = "x509"

// health records the outcome of the last write of each file.
type health struct {
	mu   sync.Mutex
	x509 string            // "" when X.509 files are not configured
	jwt  map[string]string // path of a JWT file -> status
}

func newHealth(cfg *Config) *health {
	h := &health{jwt: map[string]string{}}
	if cfg.SVIDFileName != "" {
		h.x509 = statusUnwritten
	}
	if cfg.JWTBundleFileName != "" {
		h.jwt[cfg.path(cfg.JWTBundleFileName)] = statusUnwritten
	}
	for _, j := range cfg.JWTSVIDs {
		h.jwt[cfg.path(j.FileName)] = statusUnwritten
	}
	return h
}

func (h *health) set(key, status string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if key == x509Status {
		h.x509 = status
	} else {
		h.jwt[key] = status
	}
}

// healthDoc is the body of both endpoints, spiffe-helper's.
type healthDoc struct {
	Status string `json:"status"`
	Health struct {
		FileWriteStatuses struct {
			X509WriteStatus string            `json:"x509_write_status,omitempty"`
			JWTWriteStatus  map[string]string `json:"jwt_write_status"`
		} `json:"file_write_statuses"`
	} `json:"health"`
}

// check returns the document and whether the helper is live (no last
// write failed) or ready (every file written).
func (h *health) check(ready bool) (healthDoc, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var doc healthDoc
	doc.Health.FileWriteStatuses.X509WriteStatus = h.x509
	doc.Health.FileWriteStatuses.JWTWriteStatus = maps.Clone(h.jwt)
	ok := true
	for _, s := range append([]string{h.x509}, mapValues(h.jwt)...) {
		if s == statusFailed || ready && s == statusUnwritten {
			ok = false
		}
	}
	doc.Status = http.StatusText(http.StatusOK)
	if !ok {
		doc.Status = http.StatusText(http.StatusServiceUnavailable)
	}
	return doc, ok
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// serve starts the health server on lis (nil: the configured port on
// every interface) and returns the function that stops it.
func (h *health) serve(lis net.Listener, cfg HealthConfig, log *slog.Logger) (stop func(), err error) {
	if lis == nil {
		if lis, err = net.Listen("tcp", ":"+strconv.Itoa(cfg.BindPort)); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	handle := func(ready bool) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
			doc, ok := h.check(ready)
			w.Header().Set("Content-Type", "application/json")
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			json.NewEncoder(w).Encode(doc)
		}
	}
	mux.Handle(cfg.LivenessPath, handle(false))
	mux.Handle(cfg.ReadinessPath, handle(true))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "err", err)
		}
	}()
	log.Info("health server listening", "addr", lis.Addr().String())
	return func() { srv.Close(); <-done }, nil
}
