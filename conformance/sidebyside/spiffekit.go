package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// spiffekit runs spiffekit's spiffe-server and spiffe-agent.
type spiffekit struct {
	bin, label    string
	agentArgs     []string // beyond the common ones
	agentEnv      []string // beyond the harness's environment
	dir           string
	port          int
	server, agent *proc
	admin         *admin.Client
	adminSocket   string
	agentSocket   string
}

func (s *spiffekit) name() string   { return s.label }
func (s *spiffekit) serverPID() int { return s.server.pid() }
func (s *spiffekit) agentPID() int  { return s.agent.pid() }

func (s *spiffekit) workloadAddr() string { return "unix://" + s.agentSocket }

var td = spiffeid.RequireTrustDomainFromString(trustDomain)

func (s *spiffekit) startServer(ctx context.Context, dir string) error {
	s.dir = dir
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	s.adminSocket = filepath.Join(dir, "admin.sock")
	// The lifetimes are the defaults, spelled out: SPIRE's too.
	args := []string{"run", "-trust-domain", trustDomain, "-data-dir", filepath.Join(dir, "server"),
		"-bind", fmt.Sprintf("127.0.0.1:%d", port), "-admin-socket", s.adminSocket, "-log-level", "warn",
		"-ca-ttl", "24h", "-x509-svid-ttl", "1h", "-jwt-svid-ttl", "5m"}
	if s.server, err = startProc(filepath.Join(s.bin, "spiffe-server"), args, filepath.Join(dir, "server.log")); err != nil {
		return err
	}
	s.admin = admin.Dial(s.adminSocket)
	return waitUntil(ctx, time.Minute, "spiffe-server", s.server, func() bool {
		_, err := s.admin.ListAgents(ctx)
		return err == nil
	})
}

func (s *spiffekit) token(ctx context.Context, alias string) (string, error) {
	tok, err := s.admin.GenerateToken(ctx, 10*time.Minute, spiffeid.RequireFromPath(td, "/"+alias))
	if err != nil {
		return "", err
	}
	return tok.Value, nil
}

func (s *spiffekit) bundle(ctx context.Context) ([]*x509.Certificate, error) {
	b, err := s.admin.Bundle(ctx, admin.FormatPEM)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (s *spiffekit) startAgent(ctx context.Context, token string) error {
	cas, err := s.bundle(ctx)
	if err != nil {
		return err
	}
	bundlePath := filepath.Join(s.dir, "bundle.pem")
	if err := writePEM(bundlePath, cas); err != nil {
		return err
	}
	s.agentSocket = filepath.Join(s.dir, "agent.sock")
	// The Workload API's per-uid rate limit is off, as SPIRE's agent has
	// none by default: the harness's clients share one uid.
	args := append([]string{"run", "-trust-domain", trustDomain, "-server", fmt.Sprintf("127.0.0.1:%d", s.port),
		"-trust-bundle", bundlePath, "-socket", s.agentSocket, "-data-dir", filepath.Join(s.dir, "agent"),
		"-log-level", "warn", "-ratelimit-rate", "0"}, s.agentArgs...)
	// The token goes in the environment, as the agent's help advises.
	if s.agent, err = startProc(filepath.Join(s.bin, "spiffe-agent"), args, filepath.Join(s.dir, "agent.log"),
		append([]string{"SPIFFE_AGENT_JOIN_TOKEN=" + token}, s.agentEnv...)...); err != nil {
		return err
	}
	return waitUntil(ctx, time.Minute, "spiffe-agent's Workload API", s.agent, func() bool { return socketAccepts(s.agentSocket) })
}

func kitEntry(e entrySpec) (registry.Entry, error) {
	id, err := spiffeid.FromString(e.spiffeID)
	if err != nil {
		return registry.Entry{}, err
	}
	parent, err := spiffeid.FromString(e.parentID)
	if err != nil {
		return registry.Entry{}, err
	}
	out := registry.Entry{SPIFFEID: id, ParentID: parent}
	for _, sel := range e.selectors {
		s, err := attest.ParseSelector(sel)
		if err != nil {
			return registry.Entry{}, err
		}
		out.Selectors = append(out.Selectors, s)
	}
	return out, nil
}

func (s *spiffekit) createEntries(ctx context.Context, entries []entrySpec) ([]string, error) {
	in := make([]registry.Entry, 0, len(entries))
	for _, e := range entries {
		ke, err := kitEntry(e)
		if err != nil {
			return nil, err
		}
		in = append(in, ke)
	}
	res, err := s.admin.CreateEntries(ctx, in)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(res))
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		ids = append(ids, r.Entry.ID)
	}
	return ids, nil
}

// kitFileEntry is an entry of spiffe-server entry create -data.
type kitFileEntry struct {
	SPIFFEID  string   `json:"spiffe_id"`
	ParentID  string   `json:"parent_id"`
	Selectors []string `json:"selectors"`
}

func (s *spiffekit) createEntriesCLI(ctx context.Context, entries []entrySpec) error {
	var file struct {
		Entries []kitFileEntry `json:"entries"`
	}
	for _, e := range entries {
		file.Entries = append(file.Entries, kitFileEntry{SPIFFEID: e.spiffeID, ParentID: e.parentID, Selectors: e.selectors})
	}
	path, err := writeJSON(s.dir, file)
	if err != nil {
		return err
	}
	_, err = runTool(ctx, filepath.Join(s.bin, "spiffe-server"), "entry", "create", "-admin-socket", s.adminSocket, "-data", path)
	return err
}

func (s *spiffekit) signer(ctx context.Context, token string) (signer, error) {
	cas, err := s.bundle(ctx)
	if err != nil {
		return nil, err
	}
	cfg := nodeapi.ClientConfig{
		Servers:     []string{"127.0.0.1:" + strconv.Itoa(s.port)},
		TrustDomain: td,
		Bundle:      x509bundle.FromX509Authorities(td, cas),
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	svid, err := nodeapi.Attest(ctx, cfg, jointoken.NewClient(token), key)
	if err != nil {
		return nil, fmt.Errorf("attesting: %w", err)
	}
	cli, err := nodeapi.Dial(cfg, &x509svid.SVID{ID: svid.ID, Certificates: svid.Certificates, PrivateKey: key})
	if err != nil {
		return nil, err
	}
	return kitSigner{cli}, nil
}

type kitSigner struct{ cli *nodeapi.Client }

func (s kitSigner) sign(ctx context.Context, reqs []signRequest) (int, error) {
	in := make([]nodeapi.X509SVIDRequest, len(reqs))
	for i, r := range reqs {
		in[i] = nodeapi.X509SVIDRequest{EntryID: r.entryID, CSR: r.csr}
	}
	res, err := s.cli.SignX509SVIDs(ctx, in)
	if err != nil {
		return 0, err
	}
	n := 0
	var last error
	for _, r := range res {
		if r.Err == nil && len(r.Certificates) > 0 {
			n++
		} else {
			last = r.Err
		}
	}
	if n < len(reqs) {
		return n, fmt.Errorf("%d of %d not signed: %v", len(reqs)-n, len(reqs), last)
	}
	return n, nil
}

func (s kitSigner) close() { s.cli.Close() }

func (s *spiffekit) stop() error {
	var errs []error
	errs = append(errs, s.agent.stop())
	if s.admin != nil {
		s.admin.Close()
	}
	errs = append(errs, s.server.stop())
	return errors.Join(errs...)
}
