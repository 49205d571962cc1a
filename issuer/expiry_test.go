package issuer_test

import (
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
)

// Property: an entry is served until its expiry and, from then on, an
// open stream's view holds it no more, without a write to the registry,
// a Sync or a poll (the poll interval here is far longer than the wait);
// a new subscription is not served it either.
func TestExpiredEntryLeavesOpenStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs logtest.Buffer
		e := newEnv(t, issuer.Config{PollInterval: 24 * time.Hour, X509SVIDTTL: time.Hour,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		expiresAt := time.Now().Add(10 * time.Minute).Truncate(time.Second)
		e.register(t, registry.Entry{SPIFFEID: webID, ExpiresAt: expiresAt})
		e.register(t, registry.Entry{SPIFFEID: dbID})
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		served := func() []string {
			var out []string
			for _, s := range sub.Snapshot().RawX509SVIDs {
				out = append(out, parseRaw(t, s).ID.Path())
			}
			return out
		}
		assert.ElementsMatch(t, []string{"/web", "/db"}, served())

		time.Sleep(time.Until(expiresAt) - time.Second)
		synctest.Wait()
		assert.ElementsMatch(t, []string{"/web", "/db"}, served(), "served until its expiry")
		select {
		case <-sub.Changed(): // what came before
		default:
		}

		time.Sleep(2 * time.Second)
		synctest.Wait()
		select {
		case <-sub.Changed():
		default:
			t.Fatal("the stream was not told of the change")
		}
		assert.Equal(t, []string{"/db"}, served(), "not served from its expiry on")
		assert.Contains(t, logs.String(), `msg="entry expired; its SVIDs are served no more"`)
		assert.Contains(t, logs.String(), "spiffe_id=spiffe://example.org/web")

		again, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer again.Close()
		require.Len(t, again.Snapshot().RawX509SVIDs, 1)
		assert.Equal(t, "/db", parseRaw(t, again.Snapshot().RawX509SVIDs[0]).ID.Path())
	})
}
