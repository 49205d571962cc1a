package registry_test

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func validAgent() registry.Agent {
	return registry.Agent{
		ID:                   spiffeid.RequireFromString("spiffe://example.org/spire/agent/join_token/t1"),
		AttestorType:         "join_token",
		Selectors:            []attest.Selector{{Type: "join_token", Value: "t1"}, {Type: "aws", Value: "region:eu"}},
		SerialNumber:         "0123456789abcdef",
		PreviousSerialNumber: "fe",
		ExpiresAt:            time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestAgentValidate(t *testing.T) {
	long := spiffeid.RequireFromString("spiffe://example.org/" + strings.Repeat("a", registry.MaxIDLen))
	tests := []struct {
		name    string
		mutate  func(a *registry.Agent)
		wantErr string
	}{
		{"valid", func(*registry.Agent) {}, ""},
		{"no selectors, serial or expiry", func(a *registry.Agent) {
			a.Selectors, a.SerialNumber, a.PreviousSerialNumber, a.ExpiresAt = nil, "", "", time.Time{}
		}, ""},
		{"longest serial", func(a *registry.Agent) { a.SerialNumber = strings.Repeat("f", registry.MaxSerialNumberLen) }, ""},
		{"most selectors", func(a *registry.Agent) { a.Selectors = manySelectors(registry.MaxSelectors) }, ""},
		{"no ID", func(a *registry.Agent) { a.ID = spiffeid.ID{} }, "agent ID is missing"},
		{"ID without path", func(a *registry.Agent) { a.ID = spiffeid.RequireFromString("spiffe://example.org") }, "has no path"},
		{"ID too long", func(a *registry.Agent) { a.ID = long }, "agent ID is longer"},
		{"no attestor type", func(a *registry.Agent) { a.AttestorType = "" }, "attestor type is missing"},
		{"attestor type too long", func(a *registry.Agent) { a.AttestorType = strings.Repeat("x", registry.MaxAttestorTypeLen+1) }, "attestor type is longer"},
		{"attestor type with control character", func(a *registry.Agent) { a.AttestorType = "x\x7f" }, "attestor type is not UTF-8 text"},
		{"attestor type not UTF-8", func(a *registry.Agent) { a.AttestorType = "\xff" }, "attestor type is not UTF-8 text"},
		{"too many selectors", func(a *registry.Agent) { a.Selectors = manySelectors(registry.MaxSelectors + 1) }, "at most 64"},
		{"invalid selector", func(a *registry.Agent) { a.Selectors[1].Type = "a:b" }, "agent selector 1: attest: invalid selector: type"},
		{"selector value not UTF-8", func(a *registry.Agent) { a.Selectors[1].Value = "\xe2\x82" }, "not valid UTF-8"},
		{"duplicate selector", func(a *registry.Agent) { a.Selectors = append(a.Selectors, a.Selectors[0]) }, "duplicate selector"},
		{"serial upper case", func(a *registry.Agent) { a.SerialNumber = "ABCD" }, "agent serial number"},
		{"serial with prefix", func(a *registry.Agent) { a.SerialNumber = "0x12" }, "agent serial number"},
		{"serial too long", func(a *registry.Agent) { a.SerialNumber = strings.Repeat("f", registry.MaxSerialNumberLen+1) }, "agent serial number"},
		{"previous serial with colons", func(a *registry.Agent) { a.PreviousSerialNumber = "01:02" }, "previous serial number"},
		{"expiry before year 1", func(a *registry.Agent) { a.ExpiresAt = time.Time{}.Add(-time.Hour) }, "agent expiry"},
		{"expiry after 9999", func(a *registry.Agent) { a.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "agent expiry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAgent()
			tt.mutate(&a)
			err := a.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, registry.ErrInvalid)
			require.ErrorContains(t, err, "registry: agent ")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func manySelectors(n int) []attest.Selector {
	out := make([]attest.Selector, n)
	for i := range out {
		out[i] = attest.Selector{Type: "t", Value: strings.Repeat("v", i+1)}
	}
	return out
}

func validToken() registry.JoinToken {
	sum := sha256.Sum256([]byte("secret"))
	return registry.JoinToken{ID: "Tok_en-1", SecretHash: sum[:], ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func TestJoinTokenValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(tk *registry.JoinToken)
		wantErr string
	}{
		{"valid", func(*registry.JoinToken) {}, ""},
		{"with agent ID", func(tk *registry.JoinToken) { tk.AgentID = spiffeid.RequireFromString("spiffe://example.org/agent/a") }, ""},
		{"longest ID", func(tk *registry.JoinToken) { tk.ID = strings.Repeat("A", registry.MaxTokenIDLen) }, ""},
		{"empty ID", func(tk *registry.JoinToken) { tk.ID = "" }, "join token ID"},
		{"ID too long", func(tk *registry.JoinToken) { tk.ID = strings.Repeat("A", registry.MaxTokenIDLen+1) }, "join token ID"},
		{"ID with colon", func(tk *registry.JoinToken) { tk.ID = "a:b" }, "join token ID"},
		{"ID with NUL", func(tk *registry.JoinToken) { tk.ID = "a\x00" }, "join token ID"},
		{"ID with percent", func(tk *registry.JoinToken) { tk.ID = "a%20" }, "join token ID"},
		{"no hash", func(tk *registry.JoinToken) { tk.SecretHash = nil }, "secret hash is 0 bytes, not 32"},
		{"SHA-1 sized hash", func(tk *registry.JoinToken) { tk.SecretHash = tk.SecretHash[:20] }, "secret hash is 20 bytes"},
		{"SHA-512 sized hash", func(tk *registry.JoinToken) { tk.SecretHash = make([]byte, 64) }, "secret hash is 64 bytes"},
		{"agent ID without path", func(tk *registry.JoinToken) { tk.AgentID = spiffeid.RequireFromString("spiffe://example.org") }, "agent ID"},
		{"agent ID too long", func(tk *registry.JoinToken) {
			tk.AgentID = spiffeid.RequireFromString("spiffe://example.org/" + strings.Repeat("a", registry.MaxIDLen))
		}, "agent ID is longer"},
		{"no expiry", func(tk *registry.JoinToken) { tk.ExpiresAt = time.Time{} }, "expiry is missing"},
		{"expiry after 9999", func(tk *registry.JoinToken) { tk.ExpiresAt = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC) }, "join token expiry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tk := validToken()
			tt.mutate(&tk)
			err := tk.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, registry.ErrInvalid)
			require.ErrorContains(t, err, "registry: join token ")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestValidTokenID(t *testing.T) {
	assert.True(t, registry.ValidTokenID("abcXYZ019_-"))
	for _, id := range []string{"", "a b", "a/b", "a.b", "é", strings.Repeat("a", 65), "a\n"} {
		assert.False(t, registry.ValidTokenID(id), "%q", id)
	}
}

func TestBundleValidate(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.net")
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	fed := []struct {
		name    string
		b       registry.FederatedBundle
		wantErr string
	}{
		{"valid", registry.FederatedBundle{TrustDomain: td, Document: []byte("{}")}, ""},
		{"largest", registry.FederatedBundle{TrustDomain: td, Document: make([]byte, registry.MaxBundleDocument)}, ""},
		{"no trust domain", registry.FederatedBundle{Document: []byte("{}")}, "trust domain is missing"},
		{"no document", registry.FederatedBundle{TrustDomain: td}, "empty document"},
		{"too large", registry.FederatedBundle{TrustDomain: td, Document: make([]byte, registry.MaxBundleDocument+1)}, "larger than 1048576 bytes"},
	}
	for _, tt := range fed {
		t.Run("federated "+tt.name, func(t *testing.T) {
			err := tt.b.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, registry.ErrInvalid)
			require.ErrorContains(t, err, "registry: federated bundle ")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
	server := []struct {
		name    string
		b       registry.ServerBundle
		wantErr string
	}{
		{"valid", registry.ServerBundle{ServerID: "server 1 (eu-west)", Document: []byte("{}"), ExpiresAt: exp}, ""},
		{"UTF-8 server ID", registry.ServerBundle{ServerID: "sérveur", Document: []byte("{}"), ExpiresAt: exp}, ""},
		{"longest server ID", registry.ServerBundle{ServerID: strings.Repeat("s", registry.MaxServerIDLen), Document: []byte("{}"), ExpiresAt: exp}, ""},
		{"no server ID", registry.ServerBundle{Document: []byte("{}"), ExpiresAt: exp}, "server ID is missing"},
		{"server ID too long", registry.ServerBundle{ServerID: strings.Repeat("s", registry.MaxServerIDLen+1), Document: []byte("{}"), ExpiresAt: exp}, "server ID is longer"},
		{"server ID with newline", registry.ServerBundle{ServerID: "a\nb", Document: []byte("{}"), ExpiresAt: exp}, "server ID is not UTF-8 text"},
		{"server ID not UTF-8", registry.ServerBundle{ServerID: "\xc0\xaf", Document: []byte("{}"), ExpiresAt: exp}, "server ID is not UTF-8 text"},
		{"no document", registry.ServerBundle{ServerID: "s", ExpiresAt: exp}, "empty document"},
		{"too large", registry.ServerBundle{ServerID: "s", Document: make([]byte, registry.MaxBundleDocument+1), ExpiresAt: exp}, "larger than"},
		{"no expiry", registry.ServerBundle{ServerID: "s", Document: []byte("{}")}, "no expiry"},
		{"expiry after 9999", registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "expiry is not between"},
	}
	for _, tt := range server {
		t.Run("server "+tt.name, func(t *testing.T) {
			err := tt.b.Validate()
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, registry.ErrInvalid)
			require.ErrorContains(t, err, "registry: server bundle ")
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestPrepareNodeRecords(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.FixedZone("X", 7200))
	stored := registry.StoreTime(now)

	in := validAgent()
	in.ExpiresAt = in.ExpiresAt.Add(999 * time.Nanosecond)
	a, err := registry.PrepareAgent(in, now)
	require.NoError(t, err)
	assert.Equal(t, []attest.Selector{{Type: "aws", Value: "region:eu"}, {Type: "join_token", Value: "t1"}}, a.Selectors)
	assert.Equal(t, "join_token", in.Selectors[0].Type, "input not sorted in place")
	assert.Equal(t, stored, a.CreatedAt)
	assert.Equal(t, stored, a.UpdatedAt)
	assert.Equal(t, registry.StoreTime(in.ExpiresAt), a.ExpiresAt)
	empty := validAgent()
	empty.Selectors = []attest.Selector{}
	a, err = registry.PrepareAgent(empty, now)
	require.NoError(t, err)
	assert.Nil(t, a.Selectors, "no selectors is nil, in every store")
	_, err = registry.PrepareAgent(registry.Agent{}, now)
	require.ErrorIs(t, err, registry.ErrInvalid)

	tk := validToken()
	tk.ExpiresAt = now
	prepared, err := registry.PrepareToken(tk)
	require.NoError(t, err)
	assert.Equal(t, stored, prepared.ExpiresAt)
	prepared.SecretHash[0] ^= 1
	assert.NotEqual(t, prepared.SecretHash, tk.SecretHash, "the hash is copied")
	_, err = registry.PrepareToken(registry.JoinToken{})
	require.ErrorIs(t, err, registry.ErrInvalid)

	doc := []byte("{}")
	b, err := registry.PrepareBundle(registry.FederatedBundle{TrustDomain: spiffeid.RequireTrustDomainFromString("a.org"), Document: doc}, now)
	require.NoError(t, err)
	assert.Equal(t, stored, b.UpdatedAt)
	b.Document[0] = 'X'
	assert.Equal(t, []byte("{}"), doc, "the document is copied")
	_, err = registry.PrepareBundle(registry.FederatedBundle{}, now)
	require.ErrorIs(t, err, registry.ErrInvalid)

	sb, err := registry.PrepareServerBundle(registry.ServerBundle{ServerID: "s", Document: doc, ExpiresAt: now}, now)
	require.NoError(t, err)
	assert.Equal(t, stored, sb.UpdatedAt)
	assert.Equal(t, stored, sb.ExpiresAt)
	sb.Document[0] = 'X'
	assert.Equal(t, []byte("{}"), doc, "the document is copied")
	_, err = registry.PrepareServerBundle(registry.ServerBundle{}, now)
	require.ErrorIs(t, err, registry.ErrInvalid)
}

func TestNodeRecordClone(t *testing.T) {
	a := validAgent()
	c := a.Clone()
	c.Selectors[0].Value = "changed"
	assert.Equal(t, "t1", a.Selectors[0].Value)

	tk := validToken()
	ct := tk.Clone()
	ct.SecretHash[0] ^= 1
	assert.NotEqual(t, tk.SecretHash[0], ct.SecretHash[0])

	fb := registry.FederatedBundle{Document: []byte("x")}
	cf := fb.Clone()
	cf.Document[0] = 'y'
	assert.Equal(t, byte('x'), fb.Document[0])

	sb := registry.ServerBundle{Document: []byte("x")}
	cs := sb.Clone()
	cs.Document[0] = 'y'
	assert.Equal(t, byte('x'), sb.Document[0])
}

// FuzzValidTokenID checks the gate every attacker-supplied join token ID
// passes before it reaches a store's query or an error message.
func FuzzValidTokenID(f *testing.F) {
	f.Add("node-1")
	f.Add("")
	f.Add("a b")
	f.Add(strings.Repeat("z", registry.MaxTokenIDLen+1))
	f.Fuzz(func(t *testing.T, id string) {
		if !registry.ValidTokenID(id) {
			return
		}
		require.LessOrEqual(t, len(id), registry.MaxTokenIDLen)
		require.NotEmpty(t, id)
		require.Equal(t, -1, strings.IndexFunc(id, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
		}))
		tk := validToken()
		tk.ID = id
		require.NoError(t, tk.Validate())
	})
}
