package migrate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// spireBins returns the paths of SPIRE's spire-server and spire-agent in
// $SPIRE_BIN_DIR, or skips the test saying why (fails it when
// $SPIFFEKIT_TEST_REQUIRE names spire).
func spireBins(t *testing.T) (server, agent string) {
	t.Helper()
	dir := os.Getenv("SPIRE_BIN_DIR")
	why := ""
	if dir == "" {
		why = "$SPIRE_BIN_DIR is not set (scripts/migrate-test builds SPIRE and sets it)"
	} else {
		server, agent = filepath.Join(dir, "spire-server"), filepath.Join(dir, "spire-agent")
		for _, p := range []string{server, agent} {
			if _, err := os.Stat(p); err != nil {
				why = fmt.Sprintf("SPIRE's binaries are not in $SPIRE_BIN_DIR: %v", err)
			}
		}
	}
	if why != "" {
		if slices.Contains(strings.Split(os.Getenv("SPIFFEKIT_TEST_REQUIRE"), ","), "spire") {
			t.Fatalf("required ($SPIFFEKIT_TEST_REQUIRE names spire), but cannot run here: %s", why)
		}
		t.Skip(why)
	}
	return server, agent
}

// buildOurs builds spiffe-server and spiffe-agent from this tree into dir.
func buildOurs(t *testing.T, dir string) (server, agent string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for _, p := range []string{"spiffe-server", "spiffe-agent"} {
		cmd := exec.Command("go", "build", "-C", root, "-o", filepath.Join(dir, p), "./examples/"+p)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build %s: %s", p, out)
	}
	return filepath.Join(dir, "spiffe-server"), filepath.Join(dir, "spiffe-agent")
}

// writeUpstreamCA writes a self-signed CA and its PKCS#8 key (mode 0600),
// the upstream CA both servers sign under.
func writeUpstreamCA(t *testing.T, dir string) (root *x509.Certificate, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"example.org"}, CommonName: "upstream"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	root, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath = filepath.Join(dir, "upstream.crt"), filepath.Join(dir, "upstream.key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600))
	return root, certPath, keyPath
}

// bulkEntries is how many entries beside web and db the test moves, for
// the figure of an import of a fleet's entries.
const bulkEntries = 1000

// spireServerConf: SQLite, keys in memory, join tokens, and the upstream
// CA from files (UpstreamAuthority "disk").
const spireServerConf = `server {
    bind_address = "127.0.0.1"
    bind_port = "%s"
    socket_path = "%s"
    trust_domain = "example.org"
    data_dir = "%s"
    log_level = "INFO"
}
plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "%s"
        }
    }
    KeyManager "memory" {
        plugin_data {}
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
    UpstreamAuthority "disk" {
        plugin_data {
            cert_file_path = "%s"
            key_file_path = "%s"
        }
    }
}
`

// spireAgentConf: a join token, the unix workload attestor.
const spireAgentConf = `agent {
    data_dir = "%s"
    log_level = "INFO"
    server_address = "127.0.0.1"
    server_port = "%s"
    socket_path = "%s"
    trust_bundle_path = "%s"
    trust_domain = "example.org"
    join_token = "%s"
}
plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "memory" {
        plugin_data {}
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
`

// fetch gets the X.509 context of this process from the Workload API at
// socket, waiting until it holds an SVID of id.
func fetch(t *testing.T, socket, id string, procs ...*progtest.Proc) *workloadapi.X509Context {
	t.Helper()
	var got *workloadapi.X509Context
	progtest.WaitFor(t, "an X509-SVID of "+id+" on "+socket, func() bool {
		c, err := workloadapi.FetchX509Context(t.Context(), workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			progtest.Note(t, err.Error())
			return false
		}
		if s := c.DefaultSVID(); s != nil && s.ID.String() == id {
			got = c
			return true
		}
		progtest.Note(t, fmt.Sprintf("%d SVIDs, not yet %s", len(c.SVIDs), id))
		return false
	}, procs...)
	return got
}

// TestMoveFromSPIRE follows docs/MIGRATING-FROM-SPIRE.md: a SPIRE server
// and a spiffe-server under one upstream CA, the entries moved by file,
// a workload under spire-agent (node n1) and one under spiffe-agent (node
// n2) verifying each other's SVIDs against their own bundles, then n1
// rolled over to spiffe-agent on spire-agent's socket.
func TestMoveFromSPIRE(t *testing.T) {
	spireServer, spireAgent := spireBins(t)
	// Registered first, so run last: after the processes are reaped.
	t.Cleanup(leaktest.Check(t))
	dir := progtest.ShortTemp(t)
	ourServer, ourAgent := buildOurs(t, dir)
	root, upCert, upKey := writeUpstreamCA(t, dir)
	rootPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}))
	uid := strconv.Itoa(os.Getuid())

	// SPIRE: server under the upstream CA, agent of node n1.
	spireSock := filepath.Join(dir, "spire-api.sock")
	spireBind := progtest.FreePort(t)
	_, spirePort, _ := strings.Cut(spireBind, ":")
	spireData := filepath.Join(dir, "spire-server")
	require.NoError(t, os.MkdirAll(spireData, 0o700))
	conf := filepath.Join(dir, "spire-server.conf")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, spireServerConf, spirePort, spireSock, spireData,
		filepath.Join(spireData, "datastore.sqlite3"), upCert, upKey), 0o600))
	spireSrv := progtest.Start(t, spireServer, "run", "-config", conf)
	progtest.WaitFor(t, "spire-server to be healthy", func() bool {
		_, _, code := progtest.Run(t, nil, spireServer, "healthcheck", "-socketPath", spireSock)
		return code == 0
	}, spireSrv)
	spireBundle := progtest.Must(t, spireServer, "bundle", "show", "-socketPath", spireSock)
	require.Equal(t, rootPEM, strings.TrimSpace(spireBundle)+"\n", "SPIRE's bundle is the upstream root")
	spireBundleFile := filepath.Join(dir, "spire-bundle.pem")
	require.NoError(t, os.WriteFile(spireBundleFile, []byte(spireBundle), 0o644))

	tok := progtest.Must(t, spireServer, "token", "generate", "-socketPath", spireSock, "-spiffeID", "spiffe://example.org/node/n1")
	tok = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tok), "Token:"))
	n1Sock := filepath.Join(dir, "n1.sock")
	agentConf := filepath.Join(dir, "spire-agent.conf")
	require.NoError(t, os.WriteFile(agentConf, fmt.Appendf(nil, spireAgentConf, filepath.Join(dir, "spire-agent"), spirePort,
		n1Sock, spireBundleFile, tok), 0o600))
	spireAg := progtest.Start(t, spireAgent, "run", "-config", agentConf)

	// The entries, registered in SPIRE: web on n1, db on n2, both for
	// this process's uid.
	for _, e := range [][2]string{{"n1", "web"}, {"n2", "db"}} {
		progtest.Must(t, spireServer, "entry", "create", "-socketPath", spireSock, "-parentID", "spiffe://example.org/node/"+e[0],
			"-spiffeID", "spiffe://example.org/"+e[1], "-selector", "unix:uid:"+uid, "-x509SVIDTTL", "600")
	}
	// And a fleet's worth more, for node n3, by SPIRE's entry file.
	var bulk []map[string]any
	for i := range bulkEntries {
		bulk = append(bulk, map[string]any{"spiffe_id": fmt.Sprintf("spiffe://example.org/svc/%d", i),
			"parent_id": "spiffe://example.org/node/n3", "selectors": []map[string]string{{"type": "unix", "value": fmt.Sprintf("uid:%d", 10000+i)}}})
	}
	bulkFile := filepath.Join(dir, "bulk.json")
	b, err := json.Marshal(map[string]any{"entries": bulk})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bulkFile, b, 0o600))
	progtest.Must(t, spireServer, "entry", "create", "-socketPath", spireSock, "-data", bulkFile)
	web := fetch(t, n1Sock, "spiffe://example.org/web", spireSrv, spireAg)

	// spiffe-server under the same upstream CA.
	e := &progtest.Env{T: t, ServerBin: ourServer, AgentBin: ourAgent, Dir: dir,
		AdminSock: filepath.Join(dir, "admin.sock"), Bind: progtest.FreePort(t),
		APISock: filepath.Join(dir, "n2.sock"), BundleFile: filepath.Join(dir, "bundle.pem")}
	e.ServerArgs = []string{"run", "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "server"),
		"-bind", e.Bind, "-admin-socket", e.AdminSock, "-upstream-ca-cert", upCert, "-upstream-ca-key", upKey}
	srv := e.StartServer()
	ourBundle, err := os.ReadFile(e.BundleFile)
	require.NoError(t, err)
	count := progtest.Must(t, ourServer, "entry", "count", "-admin-socket", e.AdminSock, "-output", "json")
	require.JSONEq(t, `{"count": 0}`, count, "a new server, no entries yet")
	require.Equal(t, rootPEM, string(ourBundle), "spiffe-server's bundle is the upstream root")

	// The entries move: SPIRE's export as it is, less what is parented by
	// SPIRE's agents (the node alias token generate made).
	start := time.Now()
	export := progtest.Must(t, spireServer, "entry", "show", "-socketPath", spireSock, "-output", "json")
	exported := time.Since(start)
	var file struct {
		Entries []map[string]any `json:"entries"`
	}
	require.NoError(t, json.Unmarshal([]byte(export), &file))
	require.Len(t, file.Entries, 3+bulkEntries, "web, db, n1's node alias and the bulk")
	var raw struct {
		Entries []json.RawMessage `json:"entries"`
	}
	require.NoError(t, json.Unmarshal([]byte(export), &raw))
	var kept []json.RawMessage
	for i, m := range file.Entries {
		parent, _ := m["parent_id"].(map[string]any)
		if path, _ := parent["path"].(string); !strings.HasPrefix(path, "/spire/") {
			kept = append(kept, raw.Entries[i])
		}
	}
	require.Len(t, kept, 2+bulkEntries)
	in, err := json.Marshal(map[string]any{"entries": kept})
	require.NoError(t, err)
	start = time.Now()
	out, stderr, code := progtest.RunInput(t, nil, in, ourServer, "entry", "create", "-admin-socket", e.AdminSock, "-data", "-")
	imported := time.Since(start)
	require.Equal(t, 0, code, "entry create -data: %s%s", out, stderr)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2+bulkEntries)
	var want []string
	for _, m := range file.Entries {
		if path := m["parent_id"].(map[string]any)["path"].(string); !strings.HasPrefix(path, "/spire/") {
			want = append(want, strings.ReplaceAll(m["id"].(string), "-", "")+" spiffe://example.org"+m["spiffe_id"].(map[string]any)["path"].(string))
		}
	}
	assert.Equal(t, want, lines, "each entry keeps SPIRE's ID, without its dashes")
	list := progtest.Must(t, ourServer, "entry", "list", "-admin-socket", e.AdminSock, "-output", "json")
	assert.NotContains(t, list, `"spiffe_id":"spiffe://example.org/node/n1"`, "SPIRE's node alias is left out")

	// Node n2 runs spiffe-agent, aliased as SPIRE's token made n1.
	tok2 := strings.TrimSpace(progtest.Must(t, ourServer, "token", "generate", "-admin-socket", e.AdminSock, "-spiffeID", "spiffe://example.org/node/n2"))
	ag2 := progtest.Start(t, ourAgent, e.AgentArgs(tok2)...)
	db := fetch(t, e.APISock, "spiffe://example.org/db", srv, ag2)

	// Each workload verifies the other's SVID against its own bundle.
	_, _, err = x509svid.Verify(db.DefaultSVID().Certificates, web.Bundles)
	require.NoError(t, err, "the workload under spire-agent verifies spiffekit's SVID")
	_, _, err = x509svid.Verify(web.DefaultSVID().Certificates, db.Bundles)
	require.NoError(t, err, "the workload under spiffe-agent verifies SPIRE's SVID")
	assert.Len(t, web.DefaultSVID().Certificates, 2, "SPIRE's SVID: leaf and SPIRE's CA")
	assert.Len(t, db.DefaultSVID().Certificates, 2, "spiffekit's SVID: leaf and spiffekit's CA")

	// Roll n1: spire-agent stops, spiffe-agent starts on its socket.
	spireAg.Stop(t, syscall.SIGTERM)
	tok1 := strings.TrimSpace(progtest.Must(t, ourServer, "token", "generate", "-admin-socket", e.AdminSock, "-spiffeID", "spiffe://example.org/node/n1"))
	os.Remove(n1Sock)
	rolled := time.Now()
	ag1 := progtest.Start(t, ourAgent, "run", "-trust-domain", "example.org", "-trust-bundle", spireBundleFile,
		"-join-token", tok1, "-socket", n1Sock, "-data-dir", filepath.Join(dir, "n1-data"), "-server", e.Bind)
	web2 := fetch(t, n1Sock, "spiffe://example.org/web", srv, ag1)
	t.Logf("n1 rolled over: spiffe-agent served spiffe://example.org/web on spire-agent's socket %v after it started", time.Since(rolled).Round(time.Millisecond))
	assert.NotEqual(t, web.DefaultSVID().Certificates[0].Raw, web2.DefaultSVID().Certificates[0].Raw, "a new SVID, from spiffe-server")
	_, _, err = x509svid.Verify(web2.DefaultSVID().Certificates, web.Bundles)
	require.NoError(t, err, "SPIRE's bundle, as a peer under SPIRE holds it, verifies the rolled node's SVID")
	_, _, err = x509svid.Verify(web.DefaultSVID().Certificates, web2.Bundles)
	require.NoError(t, err, "the rolled node verifies SVIDs SPIRE signed")
	t.Logf("moved %d of %d entries exported by SPIRE (its node alias left out): spire-server entry show -output json took %v, spiffe-server entry create -data %v",
		len(kept), len(file.Entries), exported.Round(time.Millisecond), imported.Round(time.Millisecond))
}
