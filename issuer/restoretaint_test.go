package issuer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
)

// taintActiveX509CA makes a new X.509 CA of m active and taints the one
// active before.
func taintActiveX509CA(t *testing.T, m *rotation.Manager) {
	t.Helper()
	old := m.X509Authority().Certificate()
	_, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateX509CA(t.Context()))
	for _, info := range m.X509CAs() {
		if info.Certificate.Equal(old) {
			require.NoError(t, m.TaintX509CA(t.Context(), info.ID))
			return
		}
	}
	t.Fatal("the old X.509 CA is gone")
}

// Property: a saved X509-SVID whose CA the Trust names as tainted when it
// is restored (a taint the program handed back after New) is left out and
// counted, never served, even with the Signer away; the others are
// restored.
func TestRestoreLeavesOutSVIDsOfATaintedCA(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	from, saved := savedFrom(t, 2)
	to := restoredIssuer(t, from, issuer.Config{})
	taintActiveX509CA(t, from.ca)
	res, err := to.iss.Restore(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Tainted: 2}, res)
	got, _ := to.iss.X509SVIDs()
	assert.Empty(t, got, "nothing of the tainted CA to serve")

	// Of an untainted CA, they are restored.
	fresh, err := restoredIssuer(t, from, issuer.Config{}).iss.Restore(mintedNow(t, from, 2))
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Restored: 2}, fresh)
}

// mintedNow returns the n X509-SVIDs the running issuer of e holds once
// all are of its active CA.
func mintedNow(t *testing.T, e *env, n int) []issuer.SavedX509SVID {
	t.Helper()
	active := e.ca.X509Authority().Certificate().Raw
	var saved []issuer.SavedX509SVID
	require.Eventually(t, func() bool {
		saved, _ = e.iss.X509SVIDs()
		if len(saved) != n {
			return false
		}
		for _, s := range saved {
			if string(s.Certificates[1]) != string(active) {
				return false
			}
		}
		return true
	}, 30*time.Second, 10*time.Millisecond)
	return saved
}

// Property: a saved WIT-SVID whose key the Trust names as tainted when it
// is restored is left out and counted, never served.
func TestRestoreWITSVIDsLeavesOutThoseOfATaintedKey(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	from, saved, token := witSavedFrom(t)
	_, err := from.ca.PrepareWITKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, from.ca.ActivateWITKey(t.Context()))
	require.NoError(t, from.ca.TaintWITKey(t.Context(), jwsKeyID(t, token)))
	to := witRestoredIssuer(t, from, nil)
	res, err := to.iss.RestoreWITSVIDs(saved)
	require.NoError(t, err)
	assert.Equal(t, issuer.RestoreResult{Tainted: 1}, res)
	got, _ := to.iss.WITSVIDs()
	assert.Empty(t, got)
	served, err := servedWITs(t, to)
	assert.Empty(t, served, "not the tainted key's: %v", err)
}
