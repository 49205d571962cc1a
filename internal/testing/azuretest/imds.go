// Package azuretest stands for Azure in tests: an instance metadata
// service (IMDS) that speaks the protocol Azure documents, a Microsoft
// Entra ID stand-in that signs managed-identity tokens with test keys and
// serves their JWKS per tenant, and a certificate chain named like
// Azure's that signs attested documents. The real IMDS answers only on an
// Azure VM; this one is a local HTTP server. Test only.
//
// The metadata service: every request must carry "Metadata: true" and an
// api-version the service knows, else 400 with a JSON {"error": ...} body
// as Azure's; a request with X-Forwarded-For is refused (400); a method
// other than GET is 405; paths it does not serve are 404. It serves
// /metadata/identity/oauth2/token?resource=... (Azure's token response,
// or 400 {"error":"invalid_request","error_description":"Identity not
// found"} when no identity is set) and /metadata/attested/document?nonce=
// ... ({"encoding":"pkcs7","signature":...}).
package azuretest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Paths of the service.
const (
	TokenPath    = "/metadata/identity/oauth2/token"
	AttestedPath = "/metadata/attested/document"
)

// APIVersions are the api-version values the service accepts.
var APIVersions = []string{"2018-02-01", "2018-10-01", "2019-08-01", "2020-09-01", "2021-02-01", "2023-07-01", "2025-04-07"}

// nonceRE is what the service takes as a nonce.
var nonceRE = regexp.MustCompile(`^[A-Za-z0-9]{1,64}$`)

// IMDS is a running instance metadata service.
type IMDS struct {
	*httptest.Server

	mu       sync.Mutex
	token    func(resource string) string
	document func(nonce string) string
	bodies   map[string]string
	hang     map[string]bool

	requests  atomic.Int32
	refused   atomic.Int32
	hung      atomic.Int32
	resources []string
	nonces    []string
	done      chan struct{}
}

// StartIMDS runs a metadata service on a loopback port until the test
// ends. It has no identity and no attested document until given them.
func StartIMDS(t testing.TB) *IMDS {
	t.Helper()
	s := &IMDS{bodies: map[string]string{}, hang: map[string]bool{}, done: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		close(s.done)
		s.Close()
	})
	return s
}

// SetToken makes the token path answer with the access token f returns
// for the resource asked for; nil means no managed identity.
func (s *IMDS) SetToken(f func(resource string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = f
}

// SetDocument makes the attested path answer with the PKCS #7 signature,
// in base64, f returns for the nonce asked for.
func (s *IMDS) SetDocument(f func(nonce string) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.document = f
}

// SetBody makes path answer 200 with body, whatever was asked.
func (s *IMDS) SetBody(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bodies[path] = body
}

// SetHang makes path never answer (until the request or the test ends).
func (s *IMDS) SetHang(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hang[path] = true
}

// Requests is the number of requests served with a 200.
func (s *IMDS) Requests() int { return int(s.requests.Load()) }

// Refused is the number of requests refused for a missing Metadata header,
// api-version, or a proxy's header.
func (s *IMDS) Refused() int { return int(s.refused.Load()) }

// HungCalls is the number of requests of a hanging path.
func (s *IMDS) HungCalls() int { return int(s.hung.Load()) }

// Resources returns the resources tokens were asked for, in order.
func (s *IMDS) Resources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.resources...)
}

// Nonces returns the nonces attested documents were asked for, in order.
func (s *IMDS) Nonces() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.nonces...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *IMDS) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("X-Forwarded-For") != "" {
		s.refused.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Bad request. Request contains a forwarded header."})
		return
	}
	if r.Header.Get("Metadata") != "true" {
		s.refused.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Bad request. Required metadata header not specified"})
		return
	}
	if r.Method != http.MethodGet {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "Bad request. HTTP method is not supported."})
		return
	}
	q := r.URL.Query()
	known := false
	for _, v := range APIVersions {
		known = known || q.Get("api-version") == v
	}
	if !known {
		s.refused.Add(1)
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":           "Bad request. api-version is invalid or was not specified in the request. For more information refer to aka.ms/azureimds",
			"newest-versions": APIVersions[len(APIVersions)-3:],
		})
		return
	}
	s.mu.Lock()
	body, fixed := s.bodies[r.URL.Path]
	hang := s.hang[r.URL.Path]
	token, document := s.token, s.document
	s.mu.Unlock()
	if hang {
		s.hung.Add(1)
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		return
	}
	switch r.URL.Path {
	case TokenPath:
		resource := q.Get("resource")
		if resource == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required audience parameter not specified"})
			return
		}
		s.mu.Lock()
		s.resources = append(s.resources, resource)
		s.mu.Unlock()
		if fixed {
			break
		}
		if token == nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Identity not found"})
			return
		}
		now := time.Now()
		s.requests.Add(1)
		writeJSON(w, http.StatusOK, map[string]string{
			"access_token":   token(resource),
			"client_id":      "9a5ae4b2-33f5-4a52-b8a0-0e8ec0d3a11f",
			"expires_in":     "86399",
			"expires_on":     strconv.FormatInt(now.Add(24*time.Hour).Unix(), 10),
			"ext_expires_in": "86399",
			"not_before":     strconv.FormatInt(now.Unix(), 10),
			"resource":       resource,
			"token_type":     "Bearer",
		})
		return
	case AttestedPath:
		nonce := q.Get("nonce")
		if nonce != "" && !nonceRE.MatchString(nonce) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "Bad request. Nonce is invalid."})
			return
		}
		s.mu.Lock()
		s.nonces = append(s.nonces, nonce)
		s.mu.Unlock()
		if fixed {
			break
		}
		if document == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not found"})
			return
		}
		s.requests.Add(1)
		writeJSON(w, http.StatusOK, map[string]string{"encoding": "pkcs7", "signature": document(nonce)})
		return
	default:
		if !fixed {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "Not found"})
			return
		}
	}
	s.requests.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write([]byte(body))
}
