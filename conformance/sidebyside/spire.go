package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	agentv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/agent/v1"
	bundlev1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/bundle/v1"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// spire runs SPIRE's spire-server and spire-agent.
type spire struct {
	bin            string
	dir            string
	port           int
	server, agent  *proc
	api            *grpc.ClientConn // the server's API socket
	agentSocket    string
	serverSocket   string
	serverDataPath string
}

func (s *spire) name() string   { return "spire" }
func (s *spire) serverPID() int { return s.server.pid() }
func (s *spire) agentPID() int  { return s.agent.pid() }

func (s *spire) workloadAddr() string { return "unix://" + s.agentSocket }

// spireServerConf is the server's configuration: SQLite, join_token, CA keys
// on disk, SPIRE's default lifetimes spelled out (they are spiffekit's
// too). The signing rate limit (500 SVIDs per second per IP by default) is
// off: spiffekit's server has none, and the signing figure would otherwise
// measure the limit.
const spireServerConf = `server {
    bind_address = "127.0.0.1"
    bind_port = "%d"
    socket_path = "%s"
    trust_domain = "example.org"
    data_dir = "%s"
    log_level = "WARN"
    ca_ttl = "24h"
    default_x509_svid_ttl = "1h"
    default_jwt_svid_ttl = "5m"
    ratelimit {
        signing = false
    }
}

plugins {
    DataStore "sql" {
        plugin_data {
            database_type = "sqlite3"
            connection_string = "%s"
        }
    }
    KeyManager "disk" {
        plugin_data {
            keys_path = "%s"
        }
    }
    NodeAttestor "join_token" {
        plugin_data {}
    }
}
`

// spireAgentConf is the agent's: join_token, its key on disk, the unix
// workload attestor with its defaults (no executable path or hash).
const spireAgentConf = `agent {
    data_dir = "%s"
    log_level = "WARN"
    server_address = "127.0.0.1"
    server_port = "%d"
    socket_path = "%s"
    trust_bundle_path = "%s"
    trust_domain = "example.org"
    join_token = "%s"
}

plugins {
    NodeAttestor "join_token" {
        plugin_data {}
    }
    KeyManager "disk" {
        plugin_data {
            directory = "%s"
        }
    }
    WorkloadAttestor "unix" {
        plugin_data {}
    }
}
`

func (s *spire) startServer(ctx context.Context, dir string) error {
	s.dir = dir
	data := filepath.Join(dir, "server")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	s.serverSocket = filepath.Join(dir, "server-api.sock")
	conf := filepath.Join(dir, "server.conf")
	body := fmt.Sprintf(spireServerConf, port, s.serverSocket, data,
		filepath.Join(data, "datastore.sqlite3"), filepath.Join(data, "keys.json"))
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	if s.server, err = startProc(filepath.Join(s.bin, "spire-server"), []string{"run", "-config", conf},
		filepath.Join(dir, "server.log")); err != nil {
		return err
	}
	if err := waitUntil(ctx, time.Minute, "spire-server", s.server, func() bool {
		_, err := runTool(ctx, filepath.Join(s.bin, "spire-server"), "healthcheck", "-socketPath", s.serverSocket)
		return err == nil
	}); err != nil {
		return err
	}
	s.api, err = grpc.NewClient("unix://"+s.serverSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	return err
}

func (s *spire) token(ctx context.Context, alias string) (string, error) {
	tok, err := agentv1.NewAgentClient(s.api).CreateJoinToken(ctx, &agentv1.CreateJoinTokenRequest{
		Ttl:     600,
		AgentId: &types.SPIFFEID{TrustDomain: trustDomain, Path: "/" + alias},
	})
	if err != nil {
		return "", err
	}
	return tok.Value, nil
}

func (s *spire) bundle(ctx context.Context) ([]*x509.Certificate, error) {
	b, err := bundlev1.NewBundleClient(s.api).GetBundle(ctx, &bundlev1.GetBundleRequest{})
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for _, a := range b.X509Authorities {
		c, err := x509.ParseCertificate(a.Asn1)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *spire) startAgent(ctx context.Context, token string) error {
	data := filepath.Join(s.dir, "agent")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	cas, err := s.bundle(ctx)
	if err != nil {
		return err
	}
	bundlePath := filepath.Join(s.dir, "bundle.pem")
	if err := writePEM(bundlePath, cas); err != nil {
		return err
	}
	s.agentSocket = filepath.Join(s.dir, "agent.sock")
	conf := filepath.Join(s.dir, "agent.conf")
	body := fmt.Sprintf(spireAgentConf, data, s.port, s.agentSocket, bundlePath, token, data)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	if s.agent, err = startProc(filepath.Join(s.bin, "spire-agent"), []string{"run", "-config", conf},
		filepath.Join(s.dir, "agent.log")); err != nil {
		return err
	}
	return waitUntil(ctx, time.Minute, "spire-agent's Workload API", s.agent, func() bool { return socketAccepts(s.agentSocket) })
}

func spireEntry(e entrySpec) (*types.Entry, error) {
	id, err := spireID(e.spiffeID)
	if err != nil {
		return nil, err
	}
	parent, err := spireID(e.parentID)
	if err != nil {
		return nil, err
	}
	out := &types.Entry{SpiffeId: id, ParentId: parent}
	for _, sel := range e.selectors {
		typ, value, ok := strings.Cut(sel, ":")
		if !ok {
			return nil, fmt.Errorf("malformed selector %q", sel)
		}
		out.Selectors = append(out.Selectors, &types.Selector{Type: typ, Value: value})
	}
	return out, nil
}

func spireID(id string) (*types.SPIFFEID, error) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return nil, fmt.Errorf("not a SPIFFE ID: %q", id)
	}
	td, path, _ := strings.Cut(rest, "/")
	return &types.SPIFFEID{TrustDomain: td, Path: "/" + path}, nil
}

func (s *spire) createEntries(ctx context.Context, entries []entrySpec) ([]string, error) {
	cli := entryv1.NewEntryClient(s.api)
	var ids []string
	for len(entries) > 0 {
		n := min(len(entries), 500)
		req := &entryv1.BatchCreateEntryRequest{}
		for _, e := range entries[:n] {
			pe, err := spireEntry(e)
			if err != nil {
				return nil, err
			}
			req.Entries = append(req.Entries, pe)
		}
		resp, err := cli.BatchCreateEntry(ctx, req)
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Results {
			if codes.Code(r.Status.Code) != codes.OK {
				return nil, fmt.Errorf("creating an entry: %s", r.Status.Message)
			}
			ids = append(ids, r.Entry.Id)
		}
		entries = entries[n:]
	}
	return ids, nil
}

// spireFileEntry is an entry of spire-server entry create -data.
type spireFileEntry struct {
	SPIFFEID  string          `json:"spiffe_id"`
	ParentID  string          `json:"parent_id"`
	Selectors []spireSelector `json:"selectors"`
}

type spireSelector struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func (s *spire) createEntriesCLI(ctx context.Context, entries []entrySpec) error {
	var file struct {
		Entries []spireFileEntry `json:"entries"`
	}
	for _, e := range entries {
		fe := spireFileEntry{SPIFFEID: e.spiffeID, ParentID: e.parentID}
		for _, sel := range e.selectors {
			typ, value, _ := strings.Cut(sel, ":")
			fe.Selectors = append(fe.Selectors, spireSelector{Type: typ, Value: value})
		}
		file.Entries = append(file.Entries, fe)
	}
	path, err := writeJSON(s.dir, file)
	if err != nil {
		return err
	}
	_, err = runTool(ctx, filepath.Join(s.bin, "spire-server"), "entry", "create", "-socketPath", s.serverSocket, "-data", path)
	return err
}

func (s *spire) signer(ctx context.Context, token string) (signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	// The harness trusts its own loopback server; it authenticates as the
	// agent it attested, which is what the server checks.
	boot, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		return nil, err
	}
	defer boot.Close()
	stream, err := agentv1.NewAgentClient(boot).AttestAgent(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&agentv1.AttestAgentRequest{Step: &agentv1.AttestAgentRequest_Params_{Params: &agentv1.AttestAgentRequest_Params{
		Data:   &types.AttestationData{Type: "join_token", Payload: []byte(token)},
		Params: &agentv1.AgentX509SVIDParams{Csr: csr},
	}}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("attesting: %w", err)
	}
	_ = stream.CloseSend()
	res := resp.GetResult()
	if res == nil || res.Svid == nil {
		return nil, errors.New("attesting: no SVID in the answer")
	}
	cert := tls.Certificate{Certificate: res.Svid.CertChain, PrivateKey: key}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		InsecureSkipVerify: true,
		Certificates:       []tls.Certificate{cert},
	})))
	if err != nil {
		return nil, err
	}
	return &spireSigner{conn: conn, cli: svidv1.NewSVIDClient(conn)}, nil
}

type spireSigner struct {
	conn *grpc.ClientConn
	cli  svidv1.SVIDClient
}

func (s *spireSigner) sign(ctx context.Context, reqs []signRequest) (int, error) {
	req := &svidv1.BatchNewX509SVIDRequest{}
	for _, r := range reqs {
		req.Params = append(req.Params, &svidv1.NewX509SVIDParams{EntryId: r.entryID, Csr: r.csr})
	}
	resp, err := s.cli.BatchNewX509SVID(ctx, req)
	if err != nil {
		return 0, err
	}
	n := 0
	var last string
	for _, r := range resp.Results {
		if codes.Code(r.Status.Code) == codes.OK && r.Svid != nil {
			// The agent parses the chain it receives, as spiffekit's
			// client does.
			if _, err := x509.ParseCertificates(bytesJoin(r.Svid.CertChain)); err == nil {
				n++
			}
		} else {
			last = r.Status.Message
		}
	}
	if n < len(reqs) {
		return n, fmt.Errorf("%d of %d not signed: %s", len(reqs)-n, len(reqs), last)
	}
	return n, nil
}

func (s *spireSigner) close() { s.conn.Close() }

func (s *spire) stop() error {
	var errs []error
	errs = append(errs, s.agent.stop())
	if s.api != nil {
		s.api.Close()
	}
	errs = append(errs, s.server.stop())
	return errors.Join(errs...)
}

func writePEM(path string, certs []*x509.Certificate) error {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return os.WriteFile(path, b, 0o600)
}

func writeJSON(dir string, v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "entries-*.json")
	if err != nil {
		return "", err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}

func bytesJoin(chain [][]byte) []byte {
	var out []byte
	for _, c := range chain {
		out = append(out, c...)
	}
	return out
}
