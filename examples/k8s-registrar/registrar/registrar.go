// Package registrar is the k8s-registrar program: its flags, and a
// registry/k8sreg controller that writes through a spiffe-server's admin
// API.
package registrar

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/k8sreg"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// DefaultAdminSocket is where spiffe-server listens for its admin API by
// default, and so the default of -admin-socket when SPIFFE_SERVER_ADMIN_SOCKET
// (spiffe-server's own variable for it) is not set.
const DefaultAdminSocket = "/run/spiffe-server/admin.sock"

// Main runs the program with the arguments (without the program's name)
// until ctx is done, logging to stderr, and returns its exit code:
// cmdline.ExitUsage for bad flags or templates, cmdline.ExitFailure when it
// cannot run, cmdline.ExitOK when ctx ends it.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("k8s-registrar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defSocket := DefaultAdminSocket
	if env := os.Getenv("SPIFFE_SERVER_ADMIN_SOCKET"); env != "" {
		defSocket = env
	}
	socket := fs.String("admin-socket", defSocket, "the spiffe-server's admin socket (default from SPIFFE_SERVER_ADMIN_SOCKET)")
	tdName := fs.String("trust-domain", "", "the server's trust domain (required)")
	cluster := fs.String("cluster", "", "the cluster's name, as the server's k8s_psat attestor knows it (required)")
	domain := fs.String("cluster-domain", "", "the cluster's DNS domain, given to templates as .ClusterDomain")
	templates := fs.String("templates", "", "the JSON file of templates (required)")
	kubeconfig := fs.String("kubeconfig", "", "a kubeconfig file; empty means the pod's in-cluster configuration")
	owner := fs.String("owner", "", "the owner of the entries made; empty means the cluster's name")
	workers := fs.Int("workers", 4, "pods reconciled at once")
	debug := fs.Bool("debug", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cmdline.ExitOK
		}
		return cmdline.ExitUsage
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "k8s-registrar: "+format+"\n", a...)
		return cmdline.ExitUsage
	}
	switch {
	case fs.NArg() > 0:
		return usage("unexpected argument %q", fs.Arg(0))
	case *tdName == "":
		return usage("-trust-domain is required")
	case *cluster == "":
		return usage("-cluster is required")
	case *templates == "":
		return usage("-templates is required")
	}
	td, err := spiffeid.TrustDomainFromString(*tdName)
	if err != nil {
		return usage("-trust-domain: %v", err)
	}
	f, err := os.Open(*templates)
	if err != nil {
		return usage("-templates: %v", err)
	}
	ts, err := k8sreg.ParseTemplates(f, td)
	f.Close()
	if err != nil {
		return usage("-templates %s: %v", *templates, err)
	}
	var rc *rest.Config
	if *kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", *kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		fmt.Fprintf(stderr, "k8s-registrar: Kubernetes client configuration: %v\n", err)
		return cmdline.ExitFailure
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		fmt.Fprintf(stderr, "k8s-registrar: Kubernetes client: %v\n", err)
		return cmdline.ExitFailure
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	adm := admin.Dial(*socket)
	defer adm.Close()
	ctl, err := k8sreg.New(k8sreg.Config{
		Client: client, Store: AdminStore{adm}, TrustDomain: td, ClusterName: *cluster, ClusterDomain: *domain,
		Templates: ts, Owner: *owner, Workers: *workers, Logger: log,
	})
	if err != nil {
		return usage("%v", err)
	}
	if err := ctl.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "k8s-registrar: %v\n", err)
		return cmdline.ExitFailure
	}
	return cmdline.ExitOK
}

// AdminStore is a [k8sreg.Store] over a server's admin API. The API lists
// entries without pages, so List returns them all at once; the controller
// lists only when it starts. It is a [registry.BatchCreator], so that the
// controller's first start creates entries in batches.
type AdminStore struct{ C *admin.Client }

var (
	_ k8sreg.Store          = AdminStore{}
	_ registry.BatchCreator = AdminStore{}
)

// Get implements [registry.Reader].
func (s AdminStore) Get(ctx context.Context, id string) (registry.Entry, error) {
	return s.C.Entry(ctx, id)
}

// List implements [registry.Reader] with one page holding every entry
// matching f.
func (s AdminStore) List(ctx context.Context, f registry.Filter, _ registry.Page) ([]registry.Entry, string, error) {
	es, err := s.C.ListEntries(ctx, f)
	return es, "", err
}

// Create implements [registry.Writer].
func (s AdminStore) Create(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	return s.C.CreateEntry(ctx, e)
}

// Update implements [registry.Writer].
func (s AdminStore) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	return s.C.UpdateEntry(ctx, e)
}

// Delete implements [registry.Writer].
func (s AdminStore) Delete(ctx context.Context, id string, revision int64) (registry.Entry, error) {
	return s.C.DeleteEntry(ctx, id, revision)
}

// CreateBatch implements [registry.BatchCreator] with the admin API's
// batch create.
func (s AdminStore) CreateBatch(ctx context.Context, entries []registry.Entry) ([]registry.BatchResult, error) {
	return s.C.CreateEntries(ctx, entries)
}
