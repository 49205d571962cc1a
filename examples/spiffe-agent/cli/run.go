package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/awsiid"
	"github.com/spiffekit/spiffekit/attest/azureimds"
	"github.com/spiffekit/spiffekit/attest/azuremsi"
	"github.com/spiffekit/spiffekit/attest/gcpiit"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/attest/tpm"
	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/examples/internal/metrics"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// socketMode is the permission of the Workload API socket: every local
// user may connect. The Workload API serves processes of every uid, and
// who gets what is decided by attesting each caller from the kernel's
// credentials (SO_PEERCRED and /proc), not by who can open the socket; a
// caller with no registration entry gets PermissionDenied. A tighter mode
// would only hide the API from workloads that are meant to use it.
const socketMode = 0o777

// runCommand is "spiffe-agent run".
func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd, s, code := parseRun(args, stdout, stderr)
	if s == nil {
		return code
	}
	return run(ctx, cmd, s, stderr)
}

// parseRun parses and checks the flags, environment and configuration file
// of run. It returns nil settings and the exit code if they are not usable
// (or only help was asked for).
func parseRun(args []string, stdout, stderr io.Writer) (*cmdline.Command, *settings, int) {
	var cfg runConfig
	cmd := newRunCommand(&cfg)
	if code, ok := cmd.Parse(args, stdout, stderr); !ok {
		return cmd, nil, code
	}
	s, err := check(cfg)
	if err != nil {
		return cmd, nil, cmd.Misuse(stderr, err)
	}
	return cmd, s, ExitOK
}

// errNoAttestor ends the start-up when the agent must attest but was given
// no node attestor (agent.ErrNoNodeAttestor).
var errNoAttestor = errors.New("no node attestor configured, and no usable agent SVID saved in the data directory: give -join-token, x509pop, k8s_psat, tpm, aws_iid, gcp_iit, azure_msi or azure_imds")

// run starts the agent described by s and serves until ctx is done.
func run(ctx context.Context, cmd *cmdline.Command, s *settings, stderr io.Writer) int {
	log := s.newLogger(stderr)

	var bundle *x509bundle.Bundle
	if s.cfg.TrustBundle != "" {
		var err error
		if bundle, err = loadTrustBundle(s, s.cfg.TrustBundle); err != nil {
			return cmd.Fail(stderr, err)
		}
	}
	if s.cfg.InsecureBootstrap {
		log.Warn("INSECURE BOOTSTRAP: the first attestation does not verify the server, and the agent trusts " +
			"whatever bundle the server it reaches sends. Anyone who can intercept the connection can " +
			"impersonate the server. Use -trust-bundle outside of trying things out.")
	}
	nodeAttestor, err := newNodeAttestor(s)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	workloadAttestors, attestorNames, err := newWorkloadAttestors(s, log)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	// The socket's directory must let every user reach the socket (see
	// socketMode); one that exists is left as the operator made it. It
	// comes before the data directory, private, which may be beside the
	// socket: its missing parents are then the socket's, 0755.
	if err := os.MkdirAll(filepath.Dir(s.socket), 0o755); err != nil {
		return cmd.Fail(stderr, fmt.Errorf("-socket: %w", err))
	}
	if s.dataDir != "" {
		if err := os.MkdirAll(filepath.Dir(s.dataDir), 0o755); err != nil {
			return cmd.Fail(stderr, fmt.Errorf("-data-dir: %w", err))
		}
		if err := os.Mkdir(s.dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return cmd.Fail(stderr, fmt.Errorf("-data-dir: %w", err))
		}
	} else {
		log.Warn("no -data-dir: nothing is kept across restarts, so a restarted agent attests again (a join token works only once)")
	}

	keys, closeKeys, err := openKeyStore(s)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	defer func() {
		// After the agent's Close, deferred below.
		if err := closeKeys(); err != nil {
			log.Warn("closing the TPM", "err", err)
		}
	}()

	attestorType := "none"
	if nodeAttestor != nil {
		attestorType = nodeAttestor.Type()
	}
	gogc, paced := setGCPercent()
	if paced {
		// Owned by run: it stops pacing, and waits for the pacer, as it
		// returns.
		pctx, stopPacing := context.WithCancel(ctx)
		pacerDone := make(chan struct{})
		go func() { defer close(pacerDone); _ = newGCPacer().Run(pctx) }()
		defer func() { stopPacing(); <-pacerDone }()
		gogc += fmt.Sprintf(", at least %d MiB of headroom", gcMinHeadroom>>20)
	}
	log.Info("starting", "trust_domain", s.trustDomain.Name(), "servers", s.cfg.Servers, "node_attestor", attestorType,
		"workload_attestors", attestorNames, "key_manager", keyManagerName(s), "gogc", gogc)
	lis, err := endpoint.ListenUnix(s.socket, socketMode)
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	// Without metrics, no observers: the agent then does no accounting at
	// all.
	var (
		reg       *prometheus.Registry
		issuerObs issuer.Observer
		apiObs    endpoint.Observer
	)
	if s.cfg.MetricsAddr != "" {
		reg = metrics.NewRegistry()
		m := newAgentMetrics(reg, strings.Join(attestorNames, "+"))
		issuerObs, apiObs = m, m
	}
	sdsCfg := s.sds(nil) // the agent's handler
	a, err := agent.New(ctx, agent.Config{
		TrustDomain:          s.trustDomain,
		Servers:              s.cfg.Servers,
		TrustBundle:          bundle,
		InsecureBootstrap:    s.cfg.InsecureBootstrap,
		NodeAttestor:         nodeAttestor,
		WorkloadAttestors:    workloadAttestors,
		Listener:             lis,
		DataDir:              s.dataDir,
		Logger:               log,
		IssuerObserver:       issuerObs,
		APIObserver:          apiObs,
		RateLimit:            s.rateLimit(),
		SDS:                  &sdsCfg,
		KeyStore:             keys,
		MintOnDemand:         s.cfg.MintOnDemand,
		WITSVIDs:             s.cfg.WITSVIDs,
		X509SVIDCacheMaxSize: s.cfg.SVIDCacheMaxSize,
	})
	switch {
	case errors.Is(err, agent.ErrNoNodeAttestor):
		lis.Close()
		return cmd.Fail(stderr, errNoAttestor)
	case err != nil:
		lis.Close()
		return cmd.Fail(stderr, err)
	}
	defer func() {
		// Run has returned, or never started: Close releases the socket.
		if err := a.Close(); err != nil {
			log.Warn("closing the agent", "err", err)
		}
	}()
	if reg != nil {
		reg.MustRegister(newStatsCollector(a))
		maddr, err := metrics.Serve(ctx, s.cfg.MetricsAddr, metrics.Handler(reg, a.Healthy, log), log)
		if err != nil {
			return cmd.Fail(stderr, err)
		}
		log.Info("serving metrics", "addr", maddr.String())
	}
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	var runErr error
	select {
	case <-a.Attested():
		log.Info("agent started", "agent", a.ID().String(), "workload_api", "unix://"+s.socket)
		if runErr = <-ran; runErr == nil {
			log.Info("shutting down", "cause", context.Cause(ctx).Error())
		}
	case runErr = <-ran:
		if runErr == nil {
			log.Info("stopped before the agent started")
		}
	}
	if runErr != nil {
		return cmd.Fail(stderr, runErr)
	}
	log.Info("stopped")
	return ExitOK
}

// newNodeAttestor returns the node attestor the settings name, or nil when
// they name none.
func newNodeAttestor(s *settings) (attest.NodeAttestorClient, error) {
	if s.cfg.X509PoPCert != "" {
		c, err := x509pop.LoadClient(s.trustDomain, s.cfg.X509PoPCert, s.cfg.X509PoPKey)
		if err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		return c, nil
	}
	if s.cfg.TPMDevice != "" {
		// A TPM that cannot be opened fails here, once, rather than in
		// the agent's attestation.
		t, err := tpm.OpenDevice(s.cfg.TPMDevice)
		if err != nil {
			return nil, fmt.Errorf("-tpm-device: %w", err)
		}
		t.Close()
		c, err := tpm.NewClient(tpm.ClientConfig{TrustDomain: s.trustDomain, Device: s.cfg.TPMDevice})
		if err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		return c, nil
	}
	if s.cfg.TPMDevID != nil {
		return newTPMDevIDClient(s.trustDomain, s.cfg.TPMDevID)
	}
	if s.cfg.K8sPSATCluster != "" {
		c, err := k8spsat.NewClient(k8spsat.ClientConfig{Cluster: s.cfg.K8sPSATCluster, TokenPath: s.cfg.K8sPSATTokenPath})
		if err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		// A token file that cannot be read fails here, once, rather than
		// in the agent's attestation; the kubelet writes it before the
		// agent's container starts.
		if _, err := c.Payload(context.Background()); err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		return c, nil
	}
	if s.cfg.AWSIID {
		// No fetch here: the metadata service is asked at each attestation.
		c, err := awsiid.NewClient(awsiid.ClientConfig{Endpoint: s.cfg.AWSIIDEndpoint, Timeout: s.cfg.AWSIIDTimeout})
		if err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		return c, nil
	}
	if s.cfg.GCPIIT {
		// No fetch here: the metadata server is asked at each attestation.
		c, err := gcpiit.NewClient(gcpiit.ClientConfig{Host: s.cfg.GCPIITHost, ServiceAccount: s.cfg.GCPIITAccount,
			Audience: s.cfg.GCPIITAudience, Timeout: s.cfg.GCPIITTimeout})
		if err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		return c, nil
	}
	if s.cfg.AzureMSI {
		// No fetch here: the metadata service is asked at each attestation.
		c, err := azuremsi.NewClient(azuremsi.ClientConfig{ResourceID: s.cfg.AzureMSIResource, Endpoint: s.cfg.AzureMSIEndpoint, Timeout: s.cfg.AzureMSITimeout})
		if err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		return c, nil
	}
	if s.cfg.AzureIMDSTenant != "" {
		// No fetch here: the metadata service is asked for each nonce.
		c, err := azureimds.NewClient(azureimds.ClientConfig{TenantDomain: s.cfg.AzureIMDSTenant, Endpoint: s.cfg.AzureIMDSEndpoint, Timeout: s.cfg.AzureIMDSTimeout})
		if err != nil {
			return nil, fmt.Errorf("node attestor: %w", err)
		}
		return c, nil
	}
	if s.cfg.JoinToken != "" {
		c := jointoken.NewClient(s.cfg.JoinToken)
		// A malformed token fails here, once, rather than in the agent's
		// attestation. The error names no part of the token.
		if _, err := c.Payload(context.Background()); err != nil {
			return nil, fmt.Errorf("-join-token: %w", err)
		}
		return c, nil
	}
	return nil, nil
}

// loadTrustBundle reads the trust bundle file: PEM CA certificates, or a
// SPIFFE bundle JSON document if the file starts with '{'.
func loadTrustBundle(s *settings, path string) (*x509bundle.Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("-trust-bundle: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, x509bundle.MaxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("-trust-bundle: %w", err)
	}
	if len(data) > x509bundle.MaxBundleSize {
		return nil, fmt.Errorf("-trust-bundle: %s is larger than %d bytes", path, x509bundle.MaxBundleSize)
	}
	var b *x509bundle.Bundle
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		sb, err := spiffebundle.Parse(s.trustDomain, trimmed)
		if err != nil {
			return nil, fmt.Errorf("-trust-bundle %s: %w", path, err)
		}
		b = sb.X509Bundle()
	} else if b, err = x509bundle.Parse(s.trustDomain, data); err != nil {
		return nil, fmt.Errorf("-trust-bundle %s: %w", path, err)
	}
	if len(b.X509Authorities()) == 0 {
		return nil, fmt.Errorf("-trust-bundle %s holds no X.509 authority", path)
	}
	for _, c := range b.X509Authorities() {
		if !c.IsCA {
			return nil, fmt.Errorf("-trust-bundle %s: the certificate %s is not a CA certificate: give the CA certificates of the trust domain (spiffe-server bundle show prints them)", path, certName(c))
		}
	}
	return b, nil
}
