package admission_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin/adminserver/internal/admission"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td  = admintest.TrustDomain
	now = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

const sha64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestCheckEntry: an entry is refused, wrapping registry.ErrInvalid and
// saying why, for each rule the registry cannot know; a node alias
// parented by the server's ID, a trust domain without a bundle yet and an
// expiry to come are fine.
func TestCheckEntry(t *testing.T) {
	foreign := admintest.Entry("/web", "unix:uid:1")
	foreign.SPIFFEID = spiffeid.RequireFromString("spiffe://other.org/web")
	foreignParent := admintest.Entry("/web", "unix:uid:1")
	foreignParent.ParentID = spiffeid.RequireFromString("spiffe://other.org/agent")
	ownTD := admintest.Entry("/web", "unix:uid:1")
	ownTD.FederatesWith = []spiffeid.TrustDomain{td}
	expired := admintest.Entry("/web", "unix:uid:1")
	expired.ExpiresAt = now
	for name, tt := range map[string]struct {
		e    registry.Entry
		want string
	}{
		"foreign ID":       {foreign, `admin: entry SPIFFE ID "spiffe://other.org/web" is not in trust domain "example.org": registry: invalid argument`},
		"foreign parent":   {foreignParent, `admin: entry parent ID "spiffe://other.org/agent" is not in trust domain "example.org": registry: invalid argument`},
		"reserved ID":      {admintest.Entry("/spiffekit/agent/x", "unix:uid:1"), `admin: entry SPIFFE ID "spiffe://example.org/spiffekit/agent/x" is reserved for the server and its agents (spiffe://example.org/spiffekit/...): registry: invalid argument`},
		"own trust domain": {ownTD, `admin: entry federates with "example.org", this server's own trust domain: registry: invalid argument`},
		"expired":          {expired, `admin: entry expiry 2030-01-01T00:00:00Z (1893456000 seconds since the epoch) has passed; give a time to come, or none: registry: invalid argument`},
	} {
		err := admission.CheckEntry(tt.e, td, now)
		require.ErrorIs(t, err, registry.ErrInvalid, name)
		assert.EqualError(t, err, tt.want, name)
	}

	alias := admintest.Entry("/nodes/blue", "join_token:id:abc")
	alias.ParentID = spiffeid.RequireFromPath(td, "/spiffekit/server")
	alias.FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("partner.test")}
	alias.ExpiresAt = now.Add(time.Second)
	require.NoError(t, admission.CheckEntry(alias, td, now))
	require.NoError(t, admission.CheckEntry(registry.Entry{}, td, now), "what is missing is the registry's to refuse")
}

// TestCheckAlias: a join token's node alias must be a workload ID of the
// trust domain, outside the reserved namespace.
func TestCheckAlias(t *testing.T) {
	for id, want := range map[string]string{
		"spiffe://example.org/spiffekit/agent/join_token/x": `admin: token SPIFFE ID "spiffe://example.org/spiffekit/agent/join_token/x" is reserved for the server and its agents (spiffe://example.org/spiffekit/...); the agent's own ID is derived from the token, and the SPIFFE ID becomes a node alias of it: registry: invalid argument`,
		"spiffe://example.org":                              `admin: token SPIFFE ID "spiffe://example.org" has no path: registry: invalid argument`,
		"spiffe://other.org/node":                           `admin: token SPIFFE ID "spiffe://other.org/node" is not in trust domain "example.org": registry: invalid argument`,
	} {
		err := admission.CheckAlias(spiffeid.RequireFromString(id), td)
		require.ErrorIs(t, err, registry.ErrInvalid, id)
		assert.EqualError(t, err, want, id)
	}
	require.NoError(t, admission.CheckAlias(spiffeid.RequireFromPath(td, "/nodes/blue"), td))
}

// TestCheckMintID: a minted SVID names a workload of the trust domain,
// outside the reserved namespace.
func TestCheckMintID(t *testing.T) {
	for id, want := range map[string]string{
		"spiffe://example.org/spiffekit/server": `admin: spiffe://example.org/spiffekit/server is reserved for the server and its agents: registry: invalid argument`,
		"spiffe://example.org":                  `admin: spiffe://example.org has no path: an SVID names a workload: registry: invalid argument`,
		"spiffe://other.org/db":                 `admin: spiffe://other.org/db is not in trust domain example.org, the only one this server signs for: registry: invalid argument`,
	} {
		err := admission.CheckMintID(spiffeid.RequireFromString(id), td)
		require.ErrorIs(t, err, registry.ErrInvalid, id)
		assert.EqualError(t, err, want, id)
	}
	require.NoError(t, admission.CheckMintID(spiffeid.RequireFromPath(td, "/db"), td))
}

// TestEntrySelectorShapes: a selector of a built-in attestor's type whose
// value that attestor can never produce is refused, naming the selector;
// selectors of other types are left to their attestors.
func TestEntrySelectorShapes(t *testing.T) {
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
		en := admintest.Entry("/web", "unix:uid:1")
		en.Selectors = append(en.Selectors, s)
		err = admission.CheckEntry(en, td, now)
		require.ErrorIs(t, err, registry.ErrInvalid, sel)
		assert.EqualError(t, err, want, sel)
	}
	for _, sel := range []string{
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
		require.NoError(t, admission.CheckEntry(admintest.Entry("/ok", sel), td, now), sel)
	}
}
