package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// failingStore is a memstore whose server bundles cannot be written.
type failingStore struct{ *memstore.Store }

var errStoreDown = errors.New("store down")

func (failingStore) PutServerBundle(context.Context, registry.ServerBundle) error {
	return errStoreDown
}

// failingJournal cannot be read.
type failingJournal struct{}

var errJournal = errors.New("journal unreadable")

func (failingJournal) Load(context.Context) ([]byte, error) { return nil, errJournal }
func (failingJournal) Store(context.Context, []byte) error  { return errJournal }

// memConfig is a valid Config over memory stores and keys.
func memConfig() server.Config {
	return server.Config{
		TrustDomain: td,
		Stores:      server.StoresOf(memstore.New(memstore.Config{})),
		KeyManager:  keymanager.NewMemory(),
		BindAddr:    "127.0.0.1:0",
	}
}

// TestConfigErrors: each bad configuration fails New for its own cause,
// and only the configuration's faults wrap ErrInvalidConfig.
func TestConfigErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	jt, err := jointoken.NewServer(jointoken.ServerConfig{Store: memstore.New(memstore.Config{})})
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		edit    func(c *server.Config)
		invalid bool   // wraps ErrInvalidConfig
		is      error  // also wraps this, when not nil
		msg     string // and says this
	}{
		{"no trust domain", func(c *server.Config) { c.TrustDomain = spiffeid.TrustDomain{} }, true, nil, "Config.TrustDomain is required"},
		{"no key manager", func(c *server.Config) { c.KeyManager = nil }, true, nil, "Config.KeyManager is required"},
		{"no entry store", func(c *server.Config) { c.Stores.Entries = nil }, true, nil, "Config.Stores.Entries is required"},
		{"no agent store", func(c *server.Config) { c.Stores.Agents = nil }, true, nil, "Config.Stores.Agents is required"},
		{"no token store", func(c *server.Config) { c.Stores.Tokens = nil }, true, nil, "Config.Stores.Tokens is required"},
		{"no bundle store", func(c *server.Config) { c.Stores.Bundles = nil }, true, nil, "Config.Stores.Bundles is required"},
		{"no server bundle store", func(c *server.Config) { c.Stores.ServerBundles = nil }, true, nil, "Config.Stores.ServerBundles is required"},
		{"negative interval", func(c *server.Config) { c.PollInterval = -1 }, true, nil, "intervals must not be negative"},
		{"negative handshake wait", func(c *server.Config) { c.HandshakeWait = -1 }, true, nil, "intervals must not be negative"},
		{"negative handshakes", func(c *server.Config) { c.MaxHandshakes = -1 }, true, nil, "Config.MaxHandshakes must not be negative"},
		{"negative lifetime", func(c *server.Config) { c.AgentSVIDTTL = -1 }, true, nil, "lifetimes must not be negative"},
		{"issuer not a URL", func(c *server.Config) { c.JWTIssuer = "example.org" }, true, nil, `Config.JWTIssuer: "example.org" is not an http or https URL`},
		{"issuer with a query", func(c *server.Config) { c.JWTIssuer = "https://oidc.example.org/?a=b" }, true, nil, "must be a URL with a host and no user info, query or fragment"},
		{"issuer with a fragment", func(c *server.Config) { c.JWTIssuer = "https://oidc.example.org/#" }, true, nil, "must be a URL with a host and no user info, query or fragment"},
		{"issuer without host", func(c *server.Config) { c.JWTIssuer = "https:///path" }, true, nil, "must be a URL with a host"},
		{"issuer too long", func(c *server.Config) { c.JWTIssuer = "https://a/" + strings.Repeat("x", 2048) }, true, nil, "Config.JWTIssuer: longer than 2048 bytes"},
		{"issuer unparsable", func(c *server.Config) { c.JWTIssuer = "https://a b/%zz" }, true, nil, "Config.JWTIssuer: not a URL"},
		{"long server ID", func(c *server.Config) { c.ServerID = strings.Repeat("x", registry.MaxServerIDLen+1) }, true, nil, "Config.ServerID is longer than"},
		{"server ID with a newline", func(c *server.Config) { c.ServerID = "a\nb" }, true, nil, "Config.ServerID must be UTF-8 text without control characters"},
		{"attestor under another name", func(c *server.Config) {
			c.NodeAttestors = map[string]attest.NodeAttestor{"psk": jt}
		}, true, nil, `node attestor "psk" has Type "join_token"`},
		{"nil attestor", func(c *server.Config) {
			c.NodeAttestors = map[string]attest.NodeAttestor{"psk": nil}
		}, true, nil, `node attestor "psk" is nil`},
		{"bad port", func(c *server.Config) { c.BindAddr = "127.0.0.1:99999" }, true, nil, `the node API address "127.0.0.1:99999": the port must be a number from 0 to 65535`},
		{"no port", func(c *server.Config) { c.BindAddr = "127.0.0.1" }, true, nil, `the node API address "127.0.0.1": address 127.0.0.1: missing port in address`},
		{"address not of this host", func(c *server.Config) { c.BindAddr = "192.0.2.1:0" }, false, nil, "server: node API: listen tcp 192.0.2.1:0"},
		{"one port for two listeners", func(c *server.Config) { c.BindAddr, c.FederationBind = "127.0.0.1:8443", "0.0.0.0:8443" }, true, nil,
			"the node API and the bundle endpoint both listen on 127.0.0.1:8443"},
		{"admin socket path too long", func(c *server.Config) { c.AdminSocket = "/run/" + strings.Repeat("s", 100) + "/admin.sock" }, true, nil,
			"the admin socket path /run/sss"},
		{"busy port", func(c *server.Config) { c.BindAddr = busy.Addr().String() }, false, syscall.EADDRINUSE, "server: node API"},
		{"admin socket under a file", func(c *server.Config) { c.AdminSocket = filepath.Join(file, "admin.sock") }, false, syscall.ENOTDIR, "server: admin socket directory"},
		{"unreadable journal", func(c *server.Config) { c.Journal = failingJournal{} }, false, errJournal, "server: starting the CA"},
		{"store down", func(c *server.Config) {
			c.Stores.ServerBundles = failingStore{memstore.New(memstore.Config{})}
		}, false, errStoreDown, "server: publishing the bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := memConfig()
			tc.edit(&cfg)
			_, err := server.New(t.Context(), cfg)
			require.Error(t, err)
			assert.Equal(t, tc.invalid, errors.Is(err, server.ErrInvalidConfig), "%v", err)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

// TestFederatedBundleReachesWorkloads: a bundle set through the admin API
// reaches the agents, and workloads whose entries federate with its trust
// domain.
func TestFederatedBundleReachesWorkloads(t *testing.T) {
	s := start(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	foreign := spiffeid.RequireTrustDomainFromString("partner.test")
	_, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:      spiffeid.RequireFromPath(td, "/web"),
		ParentID:      a.ID(),
		Selectors:     []attest.Selector{ourUID},
		FederatesWith: []spiffeid.TrustDomain{foreign},
	})
	require.NoError(t, err)
	fb := spiffebundle.FromX509Authorities(foreign, []*x509.Certificate{selfSigned(t, "partner")})
	doc, err := fb.Marshal()
	require.NoError(t, err)
	_, err = s.Admin.SetFederatedBundle(t.Context(), foreign, doc)
	require.NoError(t, err)

	// The own trust domain cannot be set through federation.
	own, err := s.Bundle().Marshal()
	require.NoError(t, err)
	_, err = s.Admin.SetFederatedBundle(t.Context(), td, own)
	require.ErrorIs(t, err, registry.ErrInvalid)

	addr := a.Addr
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(addr))
		if err != nil {
			return false
		}
		b, err := c.Bundles.GetX509BundleForTrustDomain(foreign)
		return err == nil && len(b.X509Authorities()) == 1
	}, 15*time.Second, 20*time.Millisecond, "the federated bundle reaches the workload")
}

func selfSigned(t testing.TB, cn string) *x509.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// TestX509PoPAgentAndNodeAlias: an agent proving an x509pop certificate
// attests, and gets the entries of a node alias its selectors match.
func TestX509PoPAgentAndNodeAlias(t *testing.T) {
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "node CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	nodeDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "node-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, nodeKey.Public(), caKey)
	require.NoError(t, err)
	nodeCert, err := x509.ParseCertificate(nodeDER)
	require.NoError(t, err)
	caPath := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caPath, pemutil.EncodeCertificates([]*x509.Certificate{caCert}), 0o644))
	xp, err := x509pop.LoadServer(caPath)
	require.NoError(t, err)

	s := start(t, server.Config{NodeAttestors: map[string]attest.NodeAttestor{x509pop.Type: xp}})
	serverID := spiffeid.RequireFromPath(td, "/spiffekit/server")
	alias, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/nodes/frontend"),
		ParentID:  serverID,
		Selectors: []attest.Selector{{Type: "x509pop", Value: "subject:cn:node-1"}},
	})
	require.NoError(t, err)
	web, err := s.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, "/web"),
		ParentID:  alias.SPIFFEID,
		Selectors: []attest.Selector{ourUID},
	})
	require.NoError(t, err)

	client, err := x509pop.NewClient(x509pop.ClientConfig{TrustDomain: td, Certificates: []*x509.Certificate{nodeCert}, Key: nodeKey})
	require.NoError(t, err)
	a := nodetest.StartAgent(t, agent.Config{
		TrustDomain: td, Servers: []string{s.Addr().String()}, TrustBundle: s.Bundle().X509Bundle(),
		NodeAttestor: client,
	})
	assert.Contains(t, a.ID().String(), "/spiffekit/agent/x509pop/")
	a.WaitEntries(t, 1)
	a.WaitSVID(t, web.SPIFFEID) // the agent holds an entry before it serves it
}

func TestAdminActionsReachAgents(t *testing.T) {
	s := start(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	a.WaitSynced(t)
	// A token TTL beyond the maximum is a client error, not a server one.
	_, err := s.Admin.GenerateToken(t.Context(), 48*time.Hour, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid)

	// A federated bundle set and deleted.
	foreign := spiffeid.RequireTrustDomainFromString("partner.test")
	doc, err := spiffebundle.FromX509Authorities(foreign, []*x509.Certificate{selfSigned(t, "p")}).Marshal()
	require.NoError(t, err)
	_, err = s.Admin.SetFederatedBundle(t.Context(), foreign, doc)
	require.NoError(t, err)
	_, err = s.Admin.DeleteFederatedBundle(t.Context(), foreign, admin.DeleteRestrict)
	require.NoError(t, err)

	// A ban through the admin API cuts the agent off at once.
	_, err = s.Admin.BanAgent(t.Context(), a.ID())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !a.Stats().Connected }, 10*time.Second, 5*time.Millisecond)
	rec, err := s.Admin.Agent(t.Context(), a.ID())
	require.NoError(t, err)
	assert.True(t, rec.Banned)

	assert.Equal(t, td, s.TrustDomain())
	assert.NotNil(t, s.CA().X509Authority())
	require.NoError(t, s.Healthy(t.Context()))
}

func TestUnreadablePeerBundleIsIgnored(t *testing.T) {
	var logs logtest.Buffer
	s := start(t, server.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	// Another server's contribution that does not parse is skipped; the
	// server keeps serving its own authorities.
	require.NoError(t, s.Stores.ServerBundles.PutServerBundle(t.Context(), registry.ServerBundle{
		ServerID: "broken", Document: []byte(`{"keys": "nope"}`), ExpiresAt: time.Now().Add(time.Hour),
	}))
	_, err := s.Stores.Bundles.PutBundle(t.Context(), registry.FederatedBundle{
		TrustDomain: spiffeid.RequireTrustDomainFromString("broken.test"), Document: []byte(`{"keys": 1}`),
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		out := logs.String()
		return strings.Contains(out, "ignoring an unreadable bundle of another server") &&
			strings.Contains(out, "ignoring an unreadable federated bundle")
	}, 10*time.Second, 10*time.Millisecond)
	assert.Len(t, s.Bundle().X509Authorities(), 1)
	require.NoError(t, s.Healthy(t.Context()))
}

func TestEntryWritesArePushed(t *testing.T) {
	s := start(t, server.Config{PollInterval: time.Hour}) // nothing but the push can deliver
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	addr := a.Addr
	results, err := s.Admin.CreateEntries(t.Context(), []registry.Entry{
		{SPIFFEID: spiffeid.RequireFromPath(td, "/a"), ParentID: a.ID(), Selectors: []attest.Selector{ourUID}},
		{SPIFFEID: spiffeid.RequireFromPath(td, "/b"), ParentID: a.ID(), Selectors: []attest.Selector{ourUID}},
	})
	require.NoError(t, err)
	require.Len(t, results, 2)
	require.Eventually(t, func() bool { return a.Stats().Entries == 2 }, 10*time.Second, 5*time.Millisecond)
	assert.Equal(t, 2, s.Node().Index().Len())

	e := results[0].Entry
	e.Hint = "primary"
	_, err = s.Admin.UpdateEntry(t.Context(), e)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		svids, err := workloadapi.FetchX509SVIDs(t.Context(), workloadapi.WithAddr(addr))
		return err == nil && len(svids) == 2 && (svids[0].Hint == "primary" || svids[1].Hint == "primary")
	}, 10*time.Second, 10*time.Millisecond)

	_, err = s.Admin.DeleteEntry(t.Context(), results[1].Entry.ID, 0)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return a.Stats().Entries == 1 }, 10*time.Second, 5*time.Millisecond)

	// JWT-SVIDs are signed by the server's JWT key.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tok, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"}, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	assert.Equal(t, "/a", tok.ID.Path())
}

// headFailing is a memstore whose change feed can be made to fail.
type headFailing struct {
	*memstore.Store
	down atomic.Bool
}

func (h *headFailing) Head(ctx context.Context) (int64, error) {
	if h.down.Load() {
		return 0, errStoreDown
	}
	return h.Store.Head(ctx)
}

func TestHealthyFailsWithoutDatastore(t *testing.T) {
	st := &headFailing{Store: memstore.New(memstore.Config{})}
	s := start(t, server.Config{Stores: server.StoresOf(st), KeyManager: keymanager.NewMemory()})
	require.NoError(t, s.Healthy(t.Context()))
	st.down.Store(true)
	err := s.Healthy(t.Context())
	require.ErrorIs(t, err, errStoreDown)
	assert.ErrorContains(t, err, "server: datastore")
}

// TestValidate: Validate finds what New would refuse for the
// configuration alone, without a key manager or stores, and so before a
// program opens or creates any of them.
func TestValidate(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	ok := server.Config{TrustDomain: td, AdminSocket: "/run/spiffe-server/admin.sock", FederationBind: "127.0.0.1:8443",
		Federation: []server.Relationship{{TrustDomain: spiffeid.RequireTrustDomainFromString("partner.test"),
			URL: "https://partner.test/", Profile: server.ProfileHTTPSSPIFFE,
			EndpointSPIFFEID: spiffeid.RequireFromString("spiffe://partner.test/spiffekit/server")}}}
	require.NoError(t, server.Validate(ok), "a self-serving endpoint's bundle may be stored")
	for _, tc := range []struct {
		name string
		edit func(c *server.Config)
		msg  string
	}{
		{"no trust domain", func(c *server.Config) { c.TrustDomain = spiffeid.TrustDomain{} }, "Config.TrustDomain is required"},
		{"http federation URL", func(c *server.Config) { c.Federation[0].URL = "http://partner.test/" }, "federation relationship partner.test: "},
		{"no profile", func(c *server.Config) { c.Federation[0].Profile = "" }, "the profile is required"},
		{"own trust domain", func(c *server.Config) { c.Federation[0].TrustDomain = td }, "own bundle can never be overwritten"},
		{"unknown endpoint profile", func(c *server.Config) { c.FederationProfile = "https_ftp" }, `unknown bundle endpoint profile "https_ftp"`},
		{"bad bundle endpoint address", func(c *server.Config) { c.FederationBind = "partner" }, `the bundle endpoint address "partner"`},
		{"admin socket too long", func(c *server.Config) { c.AdminSocket = "/" + strings.Repeat("a", server.MaxSocketPath) },
			"is longer than the 107 bytes a unix socket allows"},
		{"negative TTL", func(c *server.Config) { c.X509SVIDTTL = -time.Second }, "lifetimes must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			cfg.Federation = slices.Clone(ok.Federation)
			tc.edit(&cfg)
			err := server.Validate(cfg)
			require.ErrorIs(t, err, server.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}
