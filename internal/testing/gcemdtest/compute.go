package gcemdtest

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/require"
)

// ComputeInstance is what the Compute API says of an instance beyond
// [Instance]: the fields of its Instance resource that attestors read.
type ComputeInstance struct {
	Tags     []string
	Labels   map[string]string
	Metadata map[string]string
}

// ComputeServer stands for Google's OAuth token endpoint and the Compute
// API's instances.get: POST /token takes the JWT-bearer grant of a
// service account key file ([ComputeServer.KeyFile]) and returns an
// access token; GET /compute/v1/projects/P/zones/Z/instances/NAME with
// that token returns the instance's resource, 404 for an instance it
// does not have, 401 without a token it issued.
type ComputeServer struct {
	*httptest.Server

	key *Key

	mu        sync.Mutex
	instances map[string]string // path to JSON body
	tokens    map[string]bool

	gets, tokenRequests, unauthorized atomic.Int32
}

// StartCompute runs the API on a loopback port until the test ends, with
// no instance; the service account's key is test key 2.
func StartCompute(t testing.TB) *ComputeServer {
	t.Helper()
	s := &ComputeServer{key: NewKey(t, 2), instances: map[string]string{}, tokens: map[string]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Endpoint is the API's root, as a verifier's Compute API URL.
func (s *ComputeServer) Endpoint() string { return s.URL + "/compute/v1/" }

// Gets is the number of authorized instance reads.
func (s *ComputeServer) Gets() int { return int(s.gets.Load()) }

// TokenRequests is the number of access tokens issued.
func (s *ComputeServer) TokenRequests() int { return int(s.tokenRequests.Load()) }

// Unauthorized is the number of API requests without a valid token.
func (s *ComputeServer) Unauthorized() int { return int(s.unauthorized.Load()) }

// Add makes the API describe inst with ci. Raw, if not empty, is served
// instead of the description.
func (s *ComputeServer) Add(t testing.TB, inst Instance, ci ComputeInstance, raw string) {
	t.Helper()
	if raw == "" {
		type item struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		var items []item
		for k, v := range ci.Metadata {
			items = append(items, item{k, v})
		}
		b, err := json.Marshal(map[string]any{
			"kind":            "compute#instance",
			"id":              inst.InstanceID,
			"name":            inst.InstanceName,
			"zone":            "https://www.googleapis.com/compute/v1/projects/" + inst.ProjectID + "/zones/" + inst.Zone,
			"status":          "RUNNING",
			"tags":            map[string]any{"items": ci.Tags, "fingerprint": "x"},
			"labels":          ci.Labels,
			"metadata":        map[string]any{"items": items, "kind": "compute#metadata"},
			"serviceAccounts": []map[string]any{{"email": inst.ServiceAccount, "scopes": []string{"https://www.googleapis.com/auth/cloud-platform"}}},
		})
		require.NoError(t, err)
		raw = string(b)
	}
	s.mu.Lock()
	s.instances["/compute/v1/projects/"+inst.ProjectID+"/zones/"+inst.Zone+"/instances/"+inst.InstanceName] = raw
	s.mu.Unlock()
}

// KeyFile writes a service account key file whose token_uri is the
// server's, in dir, and returns its path.
func (s *ComputeServer) KeyFile(t testing.TB, dir string) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(s.key.Private)
	require.NoError(t, err)
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "example-project",
		"private_key_id": s.key.ID,
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "attestor@example-project.iam.gserviceaccount.com",
		"client_id":      "1234567890",
		"token_uri":      s.URL + "/token",
	})
	require.NoError(t, err)
	path := filepath.Join(dir, "service-account.json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

func (s *ComputeServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		s.serveToken(w, r)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	ok = ok && s.tokens[tok]
	body, found := s.instances[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		s.unauthorized.Add(1)
		http.Error(w, `{"error":{"code":401,"message":"Request is missing required authentication credential."}}`, http.StatusUnauthorized)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !found {
		http.Error(w, `{"error":{"code":404,"message":"The resource was not found"}}`, http.StatusNotFound)
		return
	}
	s.gets.Add(1)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Write([]byte(body))
}

// serveToken checks a JWT-bearer grant signed by the service account's
// key, for the compute scope, and issues an access token.
func (s *ComputeServer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		http.Error(w, `{"error":"invalid_request"}`, http.StatusBadRequest)
		return
	}
	assertion, err := jwt.ParseSigned(r.PostForm.Get("assertion"), []jose.SignatureAlgorithm{jose.RS256})
	var claims struct {
		jwt.Claims
		Scope string `json:"scope"`
	}
	if err != nil || assertion.Claims(&s.key.Private.PublicKey, &claims) != nil ||
		!strings.Contains(claims.Scope, "compute") || claims.Issuer != "attestor@example-project.iam.gserviceaccount.com" {
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = true
	s.mu.Unlock()
	s.tokenRequests.Add(1)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}
