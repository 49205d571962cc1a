package admin_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestEntryReservedIDs: the server's and the agents' namespace is refused
// as an entry's SPIFFE ID, on create, update and in a batch; as a parent
// (node aliases hang off the server's ID) it stays allowed.
func TestEntryReservedIDs(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	const msg = `admin: entry SPIFFE ID "spiffe://example.org/spiffekit/server" is reserved for the server and its agents (spiffe://example.org/spiffekit/...): registry: invalid argument`
	_, err := e.client.CreateEntry(ctx, entry("/spiffekit/server", "unix:uid:1"))
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, msg)
	for _, path := range []string{"/spiffekit", "/spiffekit/agent/join_token/x", "/spiffekit/other"} {
		_, err := e.client.CreateEntry(ctx, entry(path, "unix:uid:1"))
		require.ErrorIs(t, err, registry.ErrInvalid, path)
		assert.Contains(t, err.Error(), "is reserved for the server and its agents", path)
	}

	alias := entry("/nodes/blue", "join_token:id:abc")
	alias.ParentID = spiffeid.RequireFromPath(td, "/spiffekit/server")
	stored, err := e.client.CreateEntry(ctx, alias)
	require.NoError(t, err, "a node alias is parented by the server's ID")
	stored.SPIFFEID = spiffeid.RequireFromPath(td, "/spiffekit/agent/x")
	_, err = e.client.UpdateEntry(ctx, stored)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Contains(t, err.Error(), "is reserved for the server and its agents")

	results, err := e.client.CreateEntries(ctx, []registry.Entry{entry("/ok", "unix:uid:1"), entry("/spiffekit/server", "unix:uid:1")})
	require.NoError(t, err)
	require.NoError(t, results[0].Err)
	require.ErrorIs(t, results[1].Err, registry.ErrInvalid)
	assert.EqualError(t, results[1].Err, msg)
}

// TestReservedEntryStaysReadable: an entry stored before the namespace was
// reserved can still be read, listed and deleted.
func TestReservedEntryStaysReadable(t *testing.T) {
	old := entry("/spiffekit/server", "unix:uid:1")
	old.ID, old.Revision = registry.NewEntryID(), 1
	e := start(t)
	require.NoError(t, e.store.Replicate(t.Context(), []registry.Entry{old}, nil))
	got, err := e.client.Entry(t.Context(), old.ID)
	require.NoError(t, err)
	assert.Equal(t, old.SPIFFEID, got.SPIFFEID)
	list, err := e.client.ListEntries(t.Context(), registry.Filter{})
	require.NoError(t, err)
	assert.Len(t, list, 1)
	_, err = e.client.DeleteEntry(t.Context(), old.ID, 0)
	require.NoError(t, err)
}

// TestEntrySelectorShapes: a selector of a built-in attestor's type whose
// value that attestor can never produce is refused, naming the selector;
// selectors of other types are left to their attestors.
func TestEntrySelectorShapes(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	for sel, want := range map[string]string{
		"unix:uid:notanumber":              `admin: entry selector "unix:uid:notanumber" can never match: uid must be a decimal number without leading zeros: registry: invalid argument`,
		"unix:uid:":                        `admin: entry selector "unix:uid:" can never match: uid must be a decimal number without leading zeros: registry: invalid argument`,
		"UNIX:UID:0":                       `admin: entry selector "UNIX:UID:0" can never match: selector types are case-sensitive; the unix attestor's type is "unix": registry: invalid argument`,
		"unix:UID:0":                       `admin: entry selector "unix:UID:0" can never match: the unix attestor makes no "UID" selector (it makes gid, group, path, sha256, supplementary_gid, supplementary_group, uid, user): registry: invalid argument`,
		"unix:gid:-1":                      `admin: entry selector "unix:gid:-1" can never match: gid must be a decimal number without leading zeros: registry: invalid argument`,
		"unix:uid:007":                     `admin: entry selector "unix:uid:007" can never match: uid must be a decimal number without leading zeros: registry: invalid argument`,
		"unix:uid:4294967296":              `admin: entry selector "unix:uid:4294967296" can never match: uid must be a decimal number without leading zeros: registry: invalid argument`,
		"unix:user:":                       `admin: entry selector "unix:user:" can never match: user must not be empty: registry: invalid argument`,
		"unix:path:bin/app":                `admin: entry selector "unix:path:bin/app" can never match: path must be an absolute path: registry: invalid argument`,
		"unix:sha256:ABCD":                 `admin: entry selector "unix:sha256:ABCD" can never match: sha256 must be 64 lower-case hexadecimal digits: registry: invalid argument`,
		"unix:nokind":                      `admin: entry selector "unix:nokind" can never match: the unix attestor makes no "nokind" selector (it makes gid, group, path, sha256, supplementary_gid, supplementary_group, uid, user): registry: invalid argument`,
		"join_token:id:":                   `admin: entry selector "join_token:id:" can never match: id must be a token ID (1 to 64 characters of A-Z, a-z, 0-9, _ and -): registry: invalid argument`,
		"join_token:id:a.b":                `admin: entry selector "join_token:id:a.b" can never match: id must be a token ID (1 to 64 characters of A-Z, a-z, 0-9, _ and -): registry: invalid argument`,
		"x509pop:serialnumber:XY":          `admin: entry selector "x509pop:serialnumber:XY" can never match: serialnumber must be lower-case hexadecimal digits without leading zeros: registry: invalid argument`,
		"x509pop:serialnumber:01":          `admin: entry selector "x509pop:serialnumber:01" can never match: serialnumber must be lower-case hexadecimal digits without leading zeros: registry: invalid argument`,
		"x509pop:ca:fingerprint:":          `admin: entry selector "x509pop:ca:fingerprint:" can never match: ca:fingerprint must be 64 lower-case hexadecimal digits: registry: invalid argument`,
		"x509pop:subject:cn:":              `admin: entry selector "x509pop:subject:cn:" can never match: subject:cn must not be empty: registry: invalid argument`,
		"docker:label:nokey":               `admin: entry selector "docker:label:nokey" can never match: label must be <key>:<value>: registry: invalid argument`,
		"docker:env:ROLE":                  `admin: entry selector "docker:env:ROLE" can never match: env must be <NAME>=<value>: registry: invalid argument`,
		"docker:image:web":                 `admin: entry selector "docker:image:web" can never match: the docker attestor makes no "image" selector (it makes env, image_id, label): registry: invalid argument`,
		"k8s:ns:":                          `admin: entry selector "k8s:ns:" can never match: ns must not be empty: registry: invalid argument`,
		"k8s:pod-label::x":                 `admin: entry selector "k8s:pod-label::x" can never match: pod-label must be <key>:<value>: registry: invalid argument`,
		"k8s:pod-image-count:01":           `admin: entry selector "k8s:pod-image-count:01" can never match: pod-image-count must be a decimal number without leading zeros: registry: invalid argument`,
		"k8s:namespace:default":            `admin: entry selector "k8s:namespace:default" can never match: the k8s attestor makes no "namespace" selector (it makes container-image, container-name, node-name, ns, pod-image, pod-image-count, pod-init-image, pod-init-image-count, pod-label, pod-name, pod-owner, pod-owner-uid, pod-uid, sa): registry: invalid argument`,
		"K8S:ns:default":                   `admin: entry selector "K8S:ns:default" can never match: selector types are case-sensitive; the k8s attestor's type is "k8s": registry: invalid argument`,
		"OIDC:https://i.example:sub:x":     `admin: entry selector "OIDC:https://i.example:sub:x" can never match: selector types are case-sensitive; the token exchange's type is "oidc": registry: invalid argument`,
		"oidc:http://i.example:sub:x":      `admin: entry selector "oidc:http://i.example:sub:x" can never match: the token exchange's selectors must be <https issuer>:sub:<subject> or <https issuer>:claim:<name>:<value>: registry: invalid argument`,
		"oidc:https://i.example:subject:x": `admin: entry selector "oidc:https://i.example:subject:x" can never match: the token exchange's selectors must be <https issuer>:sub:<subject> or <https issuer>:claim:<name>:<value>: registry: invalid argument`,
		"oidc:https://i.example:sub:":      `admin: entry selector "oidc:https://i.example:sub:" can never match: the token exchange's subject must not be empty: registry: invalid argument`,
		"oidc:https://i.example:claim:x":   `admin: entry selector "oidc:https://i.example:claim:x" can never match: the token exchange's claim must be <key>:<value>: registry: invalid argument`,
		"oidc:https://i.example:claim::x":  `admin: entry selector "oidc:https://i.example:claim::x" can never match: the token exchange's claim must be <key>:<value>: registry: invalid argument`,
	} {
		s, err := attest.ParseSelector(sel)
		require.NoError(t, err, sel)
		en := entry("/web", "unix:uid:1")
		en.Selectors = append(en.Selectors, s)
		_, err = e.client.CreateEntry(ctx, en)
		require.ErrorIs(t, err, registry.ErrInvalid, sel)
		assert.EqualError(t, err, want, sel)
	}
	for i, sel := range []string{
		"unix:uid:0", "unix:gid:4294967295", "unix:user:www-data", "unix:group:staff", "unix:supplementary_gid:10",
		"unix:supplementary_group:wheel", "unix:path:/usr/bin/app", "unix:sha256:" + sha64,
		"join_token:id:0123abcd", "x509pop:subject:cn:node-1", "x509pop:serialnumber:1f", "x509pop:serialnumber:-2a", "x509pop:ca:fingerprint:" + sha64,
		"x509pop:san:dns:node.example.org", "x509pop:san:uri:spiffe://example.org/x",
		"k8s:ns:default", "k8s:sa:api", "k8s:pod-label:app:web", "k8s:pod-label:empty:", "k8s:pod-owner:ReplicaSet:web-7c9d",
		"k8s:pod-image-count:2", "k8s:container-image:registry.example/web@sha256:" + sha64,
		"docker:label:com.example.tier:front:end", "docker:image_id:sha256:" + sha64, "docker:env:ROLE=", "docker:env:A=b=c",
		"custom:anything:at all", "Unixlike:uid:x",
		"oidc:https://i.example:sub:repo:acme/app:ref:refs/heads/main", "oidc:https://i.example/tenant:claim:groups:",
		"oidc:https://i.example:8443:claim:repository:acme/app", "oidc:https://i.example:claim:email:a:sub:b",
	} {
		_, err := e.client.CreateEntry(ctx, entry("/ok/"+strconv.Itoa(i), sel))
		require.NoError(t, err, sel)
	}
}

const sha64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestEntryFederatesWithOwnTrustDomain: an entry cannot federate with its
// own trust domain, whose bundle its workloads have anyway.
func TestEntryFederatesWithOwnTrustDomain(t *testing.T) {
	e := start(t)
	en := entry("/web", "unix:uid:1")
	en.FederatesWith = []spiffeid.TrustDomain{td}
	_, err := e.client.CreateEntry(t.Context(), en)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, `admin: entry federates with "example.org", this server's own trust domain: registry: invalid argument`)
	en.FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("partner.test")}
	_, err = e.client.CreateEntry(t.Context(), en)
	require.NoError(t, err, "a trust domain without a bundle yet is accepted: its bundle may come later")
}

// TestTokenAliasChecks: a token's SPIFFE ID, the node alias of the agent
// it admits, must be a workload ID of the trust domain, outside the
// reserved namespace; the issuer is not asked otherwise.
func TestTokenAliasChecks(t *testing.T) {
	e := start(t)
	for id, want := range map[string]string{
		"spiffe://example.org/spiffekit/agent/join_token/x": `admin: token SPIFFE ID "spiffe://example.org/spiffekit/agent/join_token/x" is reserved for the server and its agents (spiffe://example.org/spiffekit/...); the agent's own ID is derived from the token, and the SPIFFE ID becomes a node alias of it: registry: invalid argument`,
		"spiffe://example.org":                              `admin: token SPIFFE ID "spiffe://example.org" has no path: registry: invalid argument`,
		"spiffe://other.org/node":                           `admin: token SPIFFE ID "spiffe://other.org/node" is not in trust domain "example.org": registry: invalid argument`,
	} {
		_, err := e.client.GenerateToken(t.Context(), time.Minute, spiffeid.RequireFromString(id))
		require.ErrorIs(t, err, registry.ErrInvalid, id)
		assert.EqualError(t, err, want, id)
		assert.True(t, e.tokens.agentID.IsZero(), "the issuer was not asked")
	}
	status, body := raw(t, e.path, "POST", "/v1/tokens", strings.NewReader(`{"ttl":"1m","spiffe_id":"nope"}`))
	assert.Equal(t, 400, status)
	assert.Contains(t, body, "spiffe_id: ")
	status, body = raw(t, e.path, "POST", "/v1/tokens", strings.NewReader(`{"ttl":"1m","agent_id":"spiffe://example.org/web"}`))
	assert.Equal(t, 400, status, "the field of older versions, which named the agent's ID, is refused")
	assert.Contains(t, body, `unknown field \"agent_id\"`)
}
