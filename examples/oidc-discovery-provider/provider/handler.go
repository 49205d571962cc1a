package provider

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// Paths the provider serves.
const (
	DiscoveryPath = "/.well-known/openid-configuration"
	KeysPath      = "/keys"
)

// signingAlgs are the JWS algorithms of JWT-SVIDs (ca: ES256, ES384,
// RS256, PS256), as the discovery document lists them.
var signingAlgs = []string{"RS256", "ES256", "ES384", "PS256"}

// Handler serves the OpenID Connect discovery document and the JWKS of a
// [KeySet], for the allowed domains only.
type Handler struct {
	domains     map[string]bool
	issuer      string
	jwksURI     string
	allowHTTP   bool
	keys        *KeySet
	log         *slog.Logger
	logRequests bool
}

// NewHandler returns the handler of cfg (already checked by
// [ParseConfig]) serving keys.
func NewHandler(cfg *Config, keys *KeySet, log *slog.Logger) *Handler {
	h := &Handler{
		domains:     make(map[string]bool, len(cfg.Domains)),
		issuer:      cfg.JWTIssuer,
		jwksURI:     cfg.JWKSURI,
		allowHTTP:   cfg.AllowInsecureScheme,
		keys:        keys,
		log:         log,
		logRequests: cfg.LogRequests,
	}
	for _, d := range cfg.Domains {
		h.domains[strings.ToLower(d)] = true
	}
	return h
}

// ServeHTTP answers GET and HEAD of DiscoveryPath and KeysPath. A request
// whose Host (without port) is not one of the domains gets 400, as SPIRE's
// provider answers, so that the documents never name a host the operator
// did not list.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.logRequests {
		h.log.Debug("request", "method", r.Method, "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
	}
	host := strings.ToLower(r.Host)
	name := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		name = hn
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if !h.domains[name] {
		http.Error(w, "domain is not allowed", http.StatusBadRequest)
		return
	}
	var serve func(http.ResponseWriter, *http.Request, string)
	switch r.URL.Path {
	case DiscoveryPath:
		serve = h.serveDiscovery
	case KeysPath:
		serve = h.serveKeys
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	serve(w, r, host)
}

// discovery is the OpenID Connect discovery document: the required
// members, with the values of a provider that only publishes keys.
type discovery struct {
	Issuer                           string   `json:"issuer"`
	JWKSURI                          string   `json:"jwks_uri"`
	AuthorizationEndpoint            string   `json:"authorization_endpoint"`
	ResponseTypesSupported           []string `json:"response_types_supported"`
	SubjectTypesSupported            []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported []string `json:"id_token_signing_alg_values_supported"`
}

func (h *Handler) serveDiscovery(w http.ResponseWriter, r *http.Request, host string) {
	scheme := "https"
	if r.TLS == nil && h.allowHTTP {
		scheme = "http"
	}
	doc := discovery{
		Issuer:                           h.issuer,
		JWKSURI:                          h.jwksURI,
		ResponseTypesSupported:           []string{"id_token"},
		SubjectTypesSupported:            []string{"public"},
		IDTokenSigningAlgValuesSupported: signingAlgs,
	}
	if doc.Issuer == "" {
		doc.Issuer = scheme + "://" + host
	}
	if doc.JWKSURI == "" {
		doc.JWKSURI = scheme + "://" + host + KeysPath
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		http.Error(w, "cannot encode the document", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

func (h *Handler) serveKeys(w http.ResponseWriter, r *http.Request, _ string) {
	cur := h.keys.load()
	if cur == nil {
		http.Error(w, "the keys are not known yet", http.StatusServiceUnavailable)
		return
	}
	hdr := w.Header()
	// Validators must see a rotation at once; they may revalidate with
	// If-Modified-Since.
	hdr.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	hdr.Set("Content-Type", "application/json")
	http.ServeContent(w, r, "keys", cur.modTime, bytes.NewReader(cur.body))
}
