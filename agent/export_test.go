package agent

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent/internal/datadir"
	"github.com/spiffekit/spiffekit/agent/internal/workloadfile"
	"github.com/spiffekit/spiffekit/internal/testing/workloadsv1test"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// SetWorkloadsSaveInterval sets how often the agents of the test save
// their workloads file, until the test ends.
func SetWorkloadsSaveInterval(t testing.TB, d time.Duration) {
	old := workloadsSaveInterval
	workloadsSaveInterval = d
	t.Cleanup(func() { workloadsSaveInterval = old })
}

// Renew renews the agent SVID once, as the agent does at half its life.
func (a *Agent) Renew(ctx context.Context) error { return a.renew(ctx) }

// SetReleaseAfterSave sets the size of a workloads file from which the
// agents of the test return their free heap to the system after writing
// it, until the test ends.
func SetReleaseAfterSave(t testing.TB, size int64) {
	old := releaseAfterSave
	releaseAfterSave = size
	t.Cleanup(func() { releaseAfterSave = old })
}

// DowngradeWorkloadsFile replaces the workloads file of dir, of trust
// domain td, with the file of version 1 an agent of that version would
// have written with what it holds: the last files of that version, with
// the SVIDs' dates, when dates, the first ones, without, else.
func DowngradeWorkloadsFile(t testing.TB, dir string, td spiffeid.TrustDomain, dates bool) {
	t.Helper()
	w, err := workloadfile.Load(dir, td)
	require.NoError(t, err)
	var b bytes.Buffer
	workloadsv1test.Write(t, &b, td, w.Agent, w.Entries, w.SVIDs, w.Federated, dates)
	require.NoError(t, os.WriteFile(filepath.Join(dir, datadir.OldWorkloadsFile), b.Bytes(), 0o600))
	require.NoError(t, os.Remove(filepath.Join(dir, datadir.WorkloadsFile)))
}

// TaintSavedWITKeys adds the WIT keys kids to the taints saved in the
// workloads file of dir, of trust domain td, as if the agent had learned
// of them before it saved the file.
func TaintSavedWITKeys(t testing.TB, dir string, td spiffeid.TrustDomain, kids ...string) {
	t.Helper()
	w, err := workloadfile.Load(dir, td)
	require.NoError(t, err)
	w.Taints.WIT = append(w.Taints.WIT, kids...)
	_, err = workloadfile.Save(dir, td, w)
	require.NoError(t, err)
}

// SavedTaints returns the tainted X.509 CAs and the kids of the tainted
// JWT keys that the workloads file of dir, of trust domain td, holds:
// none while there is no file.
func SavedTaints(t testing.TB, dir string, td spiffeid.TrustDomain) (cas []*x509.Certificate, jwt []string) {
	t.Helper()
	w, err := workloadfile.Load(dir, td)
	if errors.Is(err, workloadfile.ErrNotFound) {
		return nil, nil
	}
	require.NoError(t, err)
	return w.Taints.CAs, w.Taints.JWT
}
