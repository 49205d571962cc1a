package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

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
	"github.com/spiffekit/spiffekit/ca/upstream"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	issuing "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// assemble opens what the configuration names, which the server takes as
// values: the data directory (CA keys, journal, server ID; locked for
// this server alone, see server.DataDir), the datastore
// (SQLite in the data directory, or PostgreSQL), the x509pop CA bundle,
// the upstream CA's certificate and key (or the Vault client's files),
// the kubeconfig files of the k8s_psat clusters, the tpm manufacturer CAs,
// the aws_iid certificate files, the gcp_iit keys file,
// the https_web certificate and key (read again when they change), the
// token exchange endpoint's certificate, key and issuers' roots, and
// the relationships' bootstrap bundles and Web PKI roots. It completes cfg
// and returns it with the function that closes the datastore, to be
// called once the server is closed.
func assemble(ctx context.Context, rc runConfig, cfg issuing.Config, log *slog.Logger) (_ issuing.Config, closeStore func() error, err error) {
	// Files first: a bad file then opens nothing.
	attestors := map[string]attest.NodeAttestor{}
	if rc.X509PoPCABundle != "" {
		xp, err := x509pop.LoadServer(rc.X509PoPCABundle)
		if err != nil {
			return cfg, nil, fmt.Errorf("-x509pop-ca-bundle: %w", err) // x509pop says "x509pop: "
		}
		attestors[x509pop.Type] = xp
	}
	if rc.UpstreamCACert != "" || rc.UpstreamCAKey != "" {
		if rc.UpstreamCACert == "" || rc.UpstreamCAKey == "" {
			return cfg, nil, usagef("an upstream CA needs both -upstream-ca-cert and -upstream-ca-key")
		}
		up, err := upstream.LoadDisk(upstream.DiskConfig{CertFile: rc.UpstreamCACert, KeyFile: rc.UpstreamCAKey})
		if err != nil {
			return cfg, nil, err // upstream says "upstream: "
		}
		cfg.Upstream = up
	}
	if rc.Vault != nil {
		up, err := newVault(rc.Vault, log)
		if err != nil {
			return cfg, nil, err
		}
		cfg.Upstream = up
	}
	if rc.TPM != nil {
		t, err := newTPM(rc.TPM)
		if err != nil {
			return cfg, nil, err
		}
		attestors[tpm.Type] = t
	}
	if rc.TPMDevID != nil {
		t, err := newTPMDevID(rc.TPMDevID)
		if err != nil {
			return cfg, nil, err
		}
		attestors[tpm.DevIDType] = t
	}
	if rc.K8sPSAT != nil {
		k, err := newK8sPSAT(rc.K8sPSAT)
		if err != nil {
			return cfg, nil, err
		}
		attestors[k8spsat.Type] = k
	}
	if rc.AWSIID != nil {
		a, err := newAWSIID(rc.AWSIID)
		if err != nil {
			return cfg, nil, err
		}
		attestors[awsiid.Type] = a
	}
	if rc.GCPIIT != nil {
		g, err := newGCPIIT(rc.GCPIIT)
		if err != nil {
			return cfg, nil, err
		}
		attestors[gcpiit.Type] = g
	}
	if rc.AzureMSI != nil {
		a, err := newAzureMSI(rc.AzureMSI)
		if err != nil {
			return cfg, nil, err
		}
		attestors[azuremsi.Type] = a
	}
	if rc.AzureIMDS != nil {
		a, err := newAzureIMDS(rc.AzureIMDS)
		if err != nil {
			return cfg, nil, err
		}
		attestors[azureimds.Type] = a
	}
	if rc.FederationCert != "" || rc.FederationKey != "" {
		if cfg.FederationProfile != issuing.ProfileHTTPSWeb {
			return cfg, nil, usagef("-federation-cert and -federation-key are for the https_web bundle endpoint profile")
		}
		if rc.FederationCert == "" || rc.FederationKey == "" {
			return cfg, nil, usagef("the https_web bundle endpoint needs a certificate file and a key file")
		}
		kp, err := newKeyPairReloader(rc.FederationCert, rc.FederationKey, "bundle endpoint", log.With("component", "bundle_endpoint"))
		if err != nil {
			return cfg, nil, err
		}
		cfg.FederationCertificate = kp.getCertificate
	}
	if rc.TokenExchange != nil {
		if cfg.TokenExchange, err = newTokenExchange(rc.TokenExchange, rc.Launcher != nil, log); err != nil {
			return cfg, nil, err
		}
	}
	if rc.Launcher != nil {
		if cfg.Launcher, err = newLauncher(rc.Launcher, rc.TokenExchange != nil); err != nil {
			return cfg, nil, err
		}
	}
	if rc.FederationRoots != "" {
		if cfg.FederationWebPKIRoots, err = loadRoots(rc.FederationRoots); err != nil {
			return cfg, nil, fmt.Errorf("-federation-web-pki-roots: %w", err)
		}
	}
	for i, f := range rc.FederatesWith {
		r := &cfg.Federation[i]
		if f.BundleFile != "" {
			if r.BootstrapBundle, err = loadBootstrap(r.TrustDomain, f.BundleFile); err != nil {
				return cfg, nil, fmt.Errorf("federates_with[%d]: %w", i, err)
			}
		}
		if f.WebPKIRoots != "" {
			if r.WebPKIRoots, err = loadRoots(f.WebPKIRoots); err != nil {
				return cfg, nil, fmt.Errorf("federates_with[%d]: %w", i, err)
			}
		}
	}
	if err := checkKeyManager(rc); err != nil {
		return cfg, nil, err
	}
	// Then the whole configuration, before the data directory (keys,
	// journal) and the datastore are opened or created.
	check := cfg
	check.NodeAttestors = attestors
	if err := issuing.Validate(check); err != nil {
		return cfg, nil, err
	}

	var (
		state issuing.Config
		store *sqlstore.Store
	)
	if rc.Datastore == "" {
		state, store, err = issuing.OpenSQLite(ctx, cfg.TrustDomain, rc.DataDir)
	} else if state, err = issuing.DataDir(cfg.TrustDomain, rc.DataDir); err == nil {
		dialect, dsn := parseDatastore(rc.Datastore)
		store, err = sqlstore.Open(ctx, sqlstore.Config{Dialect: dialect, DSN: dsn,
			Logger: log.With("component", "datastore")})
		if err != nil {
			err = fmt.Errorf("opening the datastore: %w", err)
		}
	}
	if err != nil {
		if state.DataDirLock != nil {
			state.DataDirLock.Close()
		}
		return cfg, nil, err
	}
	// The CA keys: in a token or the TPM when the configuration says so,
	// else files in the data directory.
	keys, closeKeys, err := openKeyManager(rc)
	if err != nil {
		store.Close()
		state.DataDirLock.Close()
		return cfg, nil, err
	}
	closeAll := store.Close
	if keys != nil {
		state.KeyManager = keys
		closeAll = func() error { return errors.Join(store.Close(), closeKeys()) }
	}
	// The server owns the data directory's lock from New on.
	cfg.KeyManager, cfg.Journal, cfg.ServerID = state.KeyManager, state.Journal, state.ServerID
	cfg.DataDirLock = state.DataDirLock
	cfg.Stores = issuing.StoresOf(store)
	// join_token is always offered: tokens are how the README admits agents.
	jt, err := jointoken.NewServer(jointoken.ServerConfig{Store: store})
	if err != nil {
		closeAll()
		state.DataDirLock.Close()
		return cfg, nil, err
	}
	attestors[jointoken.Type] = jt
	cfg.NodeAttestors = attestors
	log.Info("datastore opened", "kind", datastoreKind(rc))
	if keys != nil {
		log.Info("CA keys", "key_manager", keyManagerKind(rc))
	}
	return cfg, closeAll, nil
}

// parseDatastore returns the dialect and DSN of -datastore, which is
// not empty: a MySQL DSN after mysql://, else a PostgreSQL connection
// string.
func parseDatastore(ds string) (sqlstore.Dialect, string) {
	if dsn, ok := strings.CutPrefix(ds, mysqlScheme); ok {
		return sqlstore.MySQL, dsn
	}
	return sqlstore.PostgreSQL, ds
}

func datastoreKind(rc runConfig) string {
	if rc.Datastore == "" {
		return "sqlite"
	}
	dialect, _ := parseDatastore(rc.Datastore)
	return string(dialect)
}

// loadBootstrap reads a SPIFFE bundle document or PEM CA certificates
// (Fed rule 17: the SPIFFE format MUST be accepted, others MAY).
func loadBootstrap(td spiffeid.TrustDomain, path string) (*spiffebundle.Bundle, error) {
	b, err := atomicfile.Read(path, spiffebundle.MaxBundleSize)
	if err != nil {
		return nil, fmt.Errorf("reading the bootstrap bundle: %w", err)
	}
	sb, err := spiffebundle.Parse(td, b)
	if err == nil {
		return sb, nil
	}
	certs, perr := pemutil.ParseCertificates(b)
	if perr != nil {
		return nil, fmt.Errorf("bootstrap bundle %s is neither a SPIFFE bundle (%w) nor PEM certificates", path, err)
	}
	return spiffebundle.FromX509Authorities(td, certs), nil
}

// loadRoots reads PEM CA certificates.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := atomicfile.Read(path, spiffebundle.MaxBundleSize)
	if err != nil {
		return nil, fmt.Errorf("reading the Web PKI roots: %w", err)
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("the Web PKI roots %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// keyPairReloader serves a PEM certificate and key from disk, loading them
// again when either file changes, so that a renewed Web PKI certificate
// needs no restart. A file that does not load keeps the previous pair.
type keyPairReloader struct {
	certFile, keyFile string
	what              string // the endpoint, in errors and logs
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	certMod time.Time
	keyMod  time.Time
}

func newKeyPairReloader(certFile, keyFile, what string, log *slog.Logger) (*keyPairReloader, error) {
	k := &keyPairReloader{certFile: certFile, keyFile: keyFile, what: what, log: log}
	if err := k.load(); err != nil {
		return nil, err
	}
	return k, nil
}

func modTime(path string) (time.Time, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// load reads the pair. The caller holds k.mu or owns k.
func (k *keyPairReloader) load() error {
	cm, err := modTime(k.certFile)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", k.what, err)
	}
	km, err := modTime(k.keyFile)
	if err != nil {
		return fmt.Errorf("%s key: %w", k.what, err)
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return fmt.Errorf("%s certificate: %w", k.what, err)
	}
	k.cert, k.certMod, k.keyMod = &cert, cm, km
	return nil
}

// getCertificate is the server's Config.FederationCertificate.
func (k *keyPairReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	cm, err1 := modTime(k.certFile)
	km, err2 := modTime(k.keyFile)
	if err1 == nil && err2 == nil && (!cm.Equal(k.certMod) || !km.Equal(k.keyMod)) {
		if err := k.load(); err != nil {
			// Not again until a file changes once more: a half-written
			// pair is completed by the next write.
			k.certMod, k.keyMod = cm, km
			k.log.Warn("reloading the "+k.what+" certificate failed; the previous one stays", "err", err)
		} else {
			k.log.Info(k.what+" certificate reloaded", "not_after", k.cert.Leaf.NotAfter)
		}
	}
	return k.cert, nil
}
