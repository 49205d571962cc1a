package e2e_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// domain is one trust domain's server, started from the built program.
type domain struct {
	td                   string
	dir, adminSock, bind string
	fedBind, bundleFile  string
}

func newDomain(t *testing.T, td string) *domain {
	dir := progtest.ShortTemp(t)
	return &domain{td: td, dir: dir, adminSock: filepath.Join(dir, "admin.sock"), bind: progtest.FreePort(t),
		fedBind: progtest.FreePort(t), bundleFile: filepath.Join(dir, td+".json")}
}

func (d *domain) start(t *testing.T, serverBin string, extra ...string) *progtest.Proc {
	os.Remove(d.adminSock)
	args := append([]string{"run", "-trust-domain", d.td, "-data-dir", filepath.Join(d.dir, "data"), "-bind", d.bind,
		"-admin-socket", d.adminSock, "-federation-bind", d.fedBind}, extra...)
	p := progtest.Start(t, serverBin, args...)
	progtest.WaitFor(t, d.td+"'s server to be ready", func() bool { return p.Ready() }, p)
	return p
}

// configFederatingWith writes a configuration file federating d with other.
func (d *domain) configFederatingWith(t *testing.T, other *domain) string {
	return progtest.FederationConfig(t, d.dir, other.td, other.fedBind, other.bundleFile)
}

// TestFederationBetweenServers walks the README's federation walk-through
// with the built programs: two servers publish their bundle endpoints, the
// operators exchange bundle files and configure one relationship each;
// each server then keeps the other's bundle, and a workload whose entry
// federates with the other trust domain receives its bundle.
func TestFederationBetweenServers(t *testing.T) {
	serverBin, agentBin := progtest.Build(t)
	org, partner := newDomain(t, "example.org"), newDomain(t, "partner.test")
	for _, d := range []*domain{org, partner} {
		p := d.start(t, serverBin)
		doc := progtest.Must(t, serverBin, "bundle", "show", "-format", "spiffe", "-admin-socket", d.adminSock)
		require.NoError(t, os.WriteFile(d.bundleFile, []byte(doc), 0o644))
		require.Equal(t, 0, p.Stop(t, syscall.SIGTERM))
	}
	org.start(t, serverBin, "-config", org.configFederatingWith(t, partner), "-federation-refresh", "1s")
	partner.start(t, serverBin, "-config", partner.configFederatingWith(t, org), "-federation-refresh", "1s")
	for _, pair := range [][2]*domain{{org, partner}, {partner, org}} {
		progtest.WaitFor(t, pair[0].td+" to keep "+pair[1].td+"'s bundle", func() bool {
			out, _, code := progtest.Run(t, nil, serverBin, "bundle", "list", "-admin-socket", pair[0].adminSock)
			return code == 0 && strings.Contains(out, pair[1].td)
		})
	}
	shown := progtest.Must(t, serverBin, "bundle", "show", "-id", "partner.test", "-admin-socket", org.adminSock)
	assert.Contains(t, shown, "BEGIN CERTIFICATE")

	// A workload of example.org federating with partner.test.
	pem := filepath.Join(org.dir, "bundle.pem")
	require.NoError(t, os.WriteFile(pem, []byte(progtest.Must(t, serverBin, "bundle", "show", "-admin-socket", org.adminSock)), 0o644))
	token := strings.TrimSpace(progtest.Must(t, serverBin, "token", "generate", "-admin-socket", org.adminSock))
	apiSock := filepath.Join(org.dir, "api.sock")
	progtest.Start(t, agentBin, "run", "-trust-domain", "example.org", "-server", org.bind, "-trust-bundle", pem,
		"-join-token", token, "-socket", apiSock, "-data-dir", filepath.Join(org.dir, "agent"))
	var agentID string
	progtest.WaitFor(t, "the agent to attest", func() bool {
		out, _, code := progtest.Run(t, nil, serverBin, "agent", "list", "-admin-socket", org.adminSock)
		agentID = regexp.MustCompile(`spiffe://example\.org/spiffekit/agent/join_token/[0-9a-f]+`).FindString(out)
		return code == 0 && agentID != ""
	})
	progtest.Must(t, serverBin, "entry", "create", "-admin-socket", org.adminSock, "-parent-id", agentID,
		"-spiffe-id", "spiffe://example.org/web", "-selector", "unix:uid:"+strconv.Itoa(os.Getuid()),
		"-federates-with", "partner.test")
	partnerTD := spiffeid.RequireTrustDomainFromString("partner.test")
	progtest.WaitFor(t, "partner.test's bundle at the workload", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c, err := workloadapi.FetchX509Context(ctx, workloadapi.WithAddr("unix://"+apiSock))
		if err != nil {
			progtest.Note(t, "FetchX509Context: "+err.Error())
			return false
		}
		b, err := c.Bundles.GetX509BundleForTrustDomain(partnerTD)
		if err != nil {
			progtest.Note(t, "partner.test's bundle: "+err.Error())
		}
		return err == nil && len(b.X509Authorities()) == 1
	})

	// The agent's commands show it, write it and print it as JSON.
	out := progtest.Must(t, agentBin, "api", "fetch", "-socket", apiSock)
	assert.Contains(t, out, "\nFederated bundles\n  partner.test, 1 X.509 authority(ies)\n")
	written := filepath.Join(org.dir, "written")
	progtest.Must(t, agentBin, "api", "fetch", "x509", "-socket", apiSock, "-write", written, "-silent")
	fedPEM, err := os.ReadFile(filepath.Join(written, "federated_bundle.0.0.pem"))
	require.NoError(t, err)
	partnerPEM := progtest.Must(t, serverBin, "bundle", "show", "-admin-socket", partner.adminSock)
	assert.Equal(t, partnerPEM, string(fedPEM))
	var fetched struct {
		SVIDs []struct {
			SPIFFEID string `json:"spiffe_id"`
		} `json:"svids"`
		FederatedBundles map[string][]byte `json:"federated_bundles"`
	}
	require.NoError(t, json.Unmarshal([]byte(progtest.Must(t, agentBin, "api", "fetch", "x509", "-socket", apiSock, "-output", "json")), &fetched))
	require.Len(t, fetched.SVIDs, 1)
	assert.Equal(t, "spiffe://example.org/web", fetched.SVIDs[0].SPIFFEID)
	assert.Contains(t, fetched.FederatedBundles, "partner.test")
}

// TestFederationFromTheCommandLine makes a relationship with federation
// create while the peer is down, as SPIRE's operators do: the first fetch
// is retried with a backoff and succeeds once the peer is up, long before
// the next regular poll (five minutes); then list, show, update and delete,
// their JSON and exit codes, and a relationship of the configuration file
// that the commands refuse to change.
func TestFederationFromTheCommandLine(t *testing.T) {
	serverBin, _ := progtest.Build(t)
	org, partner := newDomain(t, "example.org"), newDomain(t, "partner.test")
	p := org.start(t, serverBin)
	doc := progtest.Must(t, serverBin, "bundle", "show", "-format", "spiffe", "-admin-socket", org.adminSock)
	require.NoError(t, os.WriteFile(org.bundleFile, []byte(doc), 0o644))
	require.Equal(t, 0, p.Stop(t, syscall.SIGTERM))

	pp := partner.start(t, serverBin) // the regular poll: every 5 minutes
	create := []string{"federation", "create", "-socketPath", partner.adminSock, "-trustDomain", "example.org",
		"-bundleEndpointURL", "https://" + org.fedBind + "/", "-bundleEndpointProfile", "https_spiffe",
		"-endpointSpiffeID", "spiffe://example.org/spiffekit/server",
		"-trustDomainBundlePath", org.bundleFile, "-trustDomainBundleFormat", "spiffe"}
	out := progtest.Must(t, serverBin, create...)
	assert.Contains(t, out, "Trust domain              : example.org\n")
	progtest.WaitFor(t, "the first fetch to fail and be retried", func() bool {
		return strings.Contains(pp.Output(), "the first fetch of a federated bundle failed; trying again soon")
	}, pp)
	_, stderr, code := progtest.Run(t, nil, serverBin, create...)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `federation relationship with "example.org" exists already`)

	org.start(t, serverBin)
	progtest.WaitFor(t, "partner.test to keep example.org's bundle", func() bool {
		out, _, code := progtest.Run(t, nil, serverBin, "bundle", "list", "-admin-socket", partner.adminSock)
		return code == 0 && strings.Contains(out, "example.org")
	}, pp)
	assert.Contains(t, pp.Output(), "federation relationship added; polling its bundle endpoint")

	var list struct {
		Relationships []struct {
			TrustDomain string `json:"trust_domain"`
			HTTPSSPIFFE struct {
				EndpointSPIFFEID string `json:"endpoint_spiffe_id"`
			} `json:"https_spiffe"`
			Source string `json:"source"`
		} `json:"federation_relationships"`
	}
	require.NoError(t, json.Unmarshal([]byte(progtest.Must(t, serverBin, "federation", "list", "-admin-socket", partner.adminSock, "-output", "json")), &list))
	require.Len(t, list.Relationships, 1)
	assert.Equal(t, "example.org", list.Relationships[0].TrustDomain)
	assert.Equal(t, "spiffe://example.org/spiffekit/server", list.Relationships[0].HTTPSSPIFFE.EndpointSPIFFEID)
	assert.Equal(t, "datastore", list.Relationships[0].Source)
	out = progtest.Must(t, serverBin, "federation", "show", "-trustDomain", "example.org", "-admin-socket", partner.adminSock)
	assert.Contains(t, out, "Found a federation relationship with trust domain example.org:")

	// Changed: polled anew, without a restart.
	progtest.Must(t, serverBin, "federation", "update", "-socketPath", partner.adminSock, "-trustDomain", "example.org",
		"-bundleEndpointURL", "https://localhost:"+portOf(org.fedBind)+"/", "-bundleEndpointProfile", "https_spiffe",
		"-endpointSpiffeID", "spiffe://example.org/spiffekit/server")
	progtest.WaitFor(t, "the changed relationship to be polled", func() bool {
		return strings.Contains(pp.Output(), "federation relationship changed; polling its bundle endpoint") &&
			strings.Count(pp.Output(), "url=https://localhost:") >= 2
	}, pp)

	// Bad usage is exit 2; a refused request exit 1.
	_, stderr, code = progtest.Run(t, nil, serverBin, "federation", "create", "-socketPath", partner.adminSock, "-trustDomain", "x.test")
	assert.Equal(t, 2, code, stderr)
	_, _, code = progtest.Run(t, nil, serverBin, "federation", "-h")
	assert.Equal(t, 0, code)

	// Deleted: no longer polled; the bundle stays.
	out = progtest.Must(t, serverBin, "federation", "delete", "-id", "example.org", "-socketPath", partner.adminSock, "-output", "json")
	assert.JSONEq(t, `{"trust_domain":"example.org"}`, out)
	progtest.WaitFor(t, "the relationship to stop", func() bool {
		return strings.Contains(pp.Output(), "federation relationship removed")
	}, pp)
	assert.Contains(t, progtest.Must(t, serverBin, "bundle", "list", "-admin-socket", partner.adminSock), "example.org")

	// A relationship of the configuration file: shown, never changed here.
	require.Equal(t, 0, pp.Stop(t, syscall.SIGTERM))
	pp = partner.start(t, serverBin, "-config", partner.configFederatingWith(t, org))
	out = progtest.Must(t, serverBin, "federation", "list", "-admin-socket", partner.adminSock)
	assert.Contains(t, out, "Source                    : config\n")
	_, stderr, code = progtest.Run(t, nil, serverBin, "federation", "delete", "-id", "example.org", "-admin-socket", partner.adminSock)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "in the server's configuration; change it there")
}

// TestFederationSharedByServers: two servers of one trust domain on one
// PostgreSQL database; a relationship made through one is polled by both,
// and deleted through the other, by neither.
func TestFederationSharedByServers(t *testing.T) {
	serverBin, _ := progtest.Build(t)
	dsn := pgtest.New(t)
	org := newDomain(t, "example.org")
	org.start(t, serverBin)
	doc := progtest.Must(t, serverBin, "bundle", "show", "-format", "spiffe", "-admin-socket", org.adminSock)
	require.NoError(t, os.WriteFile(org.bundleFile, []byte(doc), 0o644))
	a, b := newDomain(t, "partner.test"), newDomain(t, "partner.test")
	pa := a.start(t, serverBin, "-datastore", dsn)
	pb := b.start(t, serverBin, "-datastore", dsn)
	progtest.Must(t, serverBin, "federation", "create", "-socketPath", a.adminSock, "-trustDomain", "example.org",
		"-bundleEndpointURL", "https://"+org.fedBind+"/", "-bundleEndpointProfile", "https_spiffe",
		"-endpointSpiffeID", "spiffe://example.org/spiffekit/server", "-trustDomainBundlePath", org.bundleFile,
		"-trustDomainBundleFormat", "spiffe")
	for _, p := range []*progtest.Proc{pa, pb} {
		progtest.WaitFor(t, "each server to poll the relationship", func() bool {
			return strings.Contains(p.Output(), "federation relationship added; polling its bundle endpoint")
		}, p)
	}
	assert.Contains(t, progtest.Must(t, serverBin, "federation", "list", "-admin-socket", b.adminSock), "Trust domain              : example.org")
	progtest.Must(t, serverBin, "federation", "delete", "-id", "example.org", "-admin-socket", b.adminSock)
	for _, p := range []*progtest.Proc{pa, pb} {
		progtest.WaitFor(t, "each server to stop polling it", func() bool {
			return strings.Contains(p.Output(), "federation relationship removed")
		}, p)
	}
}

// portOf returns the port of a host:port address.
func portOf(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }
