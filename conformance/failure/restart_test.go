// Package failure checks how spiffekit's Workload API server, and the
// clients of both libraries talking to it, behave when things go wrong: a
// server restart under live sources, clients leaving mid-stream, many
// streams at once, malformed requests.
package failure

import (
	"context"
	"fmt"
	"testing"
	"time"

	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

const timeout = 15 * time.Second

// chanLogger implements the logger.Logger interface of both libraries and
// forwards warnings and errors, so a test can wait until a client has
// noticed a failure.
type chanLogger struct{ errs chan string }

func newChanLogger() chanLogger { return chanLogger{errs: make(chan string, 64)} }

func (chanLogger) Debugf(string, ...any) {}
func (chanLogger) Infof(string, ...any)  {}
func (l chanLogger) Warnf(format string, args ...any) {
	l.send(format, args...)
}
func (l chanLogger) Errorf(format string, args ...any) {
	l.send(format, args...)
}

func (l chanLogger) send(format string, args ...any) {
	select {
	case l.errs <- fmt.Sprintf(format, args...):
	default:
	}
}

type fastBackoff struct{}

func (fastBackoff) NewBackoff() gsworkloadapi.Backoff { return fastBackoff{} }
func (fastBackoff) Next() time.Duration               { return 10 * time.Millisecond }
func (fastBackoff) Reset()                            {}

type ourFastBackoff struct{}

func (ourFastBackoff) NewBackoff() workloadapi.Backoff { return ourFastBackoff{} }
func (ourFastBackoff) Next() time.Duration             { return 10 * time.Millisecond }
func (ourFastBackoff) Reset()                          {}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// x509Source is what both libraries' X509Source offer that the restart
// test needs; the SVID is reduced to its leaf's raw bytes.
type x509Source struct {
	leaf    func() ([]byte, error)
	updated <-chan struct{}
}

// TestServerRestartUnderSources stops the server under connected
// X509Sources of both libraries: they keep serving the last good SVID,
// reconnect to the new server on the same socket and pick up its SVID
// (connection lifetime, WAPI rule 3).
func TestServerRestartUnderSources(t *testing.T) {
	for _, impl := range []string{"go-spiffe", "spiffekit"} {
		t.Run("impl="+impl, func(t *testing.T) {
			f := workloadtest.New(t)
			first := f.SVID(t, workloadtest.WebID, "")
			require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(first)))
			srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
			ctx := testContext(t)
			log := newChanLogger()

			var src x509Source
			switch impl {
			case "go-spiffe":
				s, err := gsworkloadapi.NewX509Source(ctx, gsworkloadapi.WithClientOptions(
					gsworkloadapi.WithAddr(srv.Addr), gsworkloadapi.WithBackoffStrategy(fastBackoff{}), gsworkloadapi.WithLogger(log)))
				require.NoError(t, err)
				defer s.Close()
				src = x509Source{updated: s.Updated(), leaf: func() ([]byte, error) {
					svid, err := s.GetX509SVID()
					if err != nil {
						return nil, err
					}
					return svid.Certificates[0].Raw, nil
				}}
			case "spiffekit":
				s, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(
					workloadapi.WithAddr(srv.Addr), workloadapi.WithBackoffStrategy(ourFastBackoff{}), workloadapi.WithLogger(log)))
				require.NoError(t, err)
				defer s.Close()
				src = x509Source{updated: s.Updated(), leaf: func() ([]byte, error) {
					svid, err := s.GetX509SVID()
					if err != nil {
						return nil, err
					}
					return svid.Certificates[0].Raw, nil
				}}
			}
			leaf, err := src.leaf()
			require.NoError(t, err)
			require.Equal(t, first.Certificates[0].Raw, leaf)

			// Stop: the stream ends with Unavailable, redials fail.
			require.NoError(t, srv.Stop())
			_, err = workloadtest.Recv(log.errs, timeout)
			require.NoError(t, err, "the source should report the lost stream")
			_, err = workloadtest.Recv(log.errs, timeout)
			require.NoError(t, err, "and keep failing while the server is down")
			leaf, err = src.leaf()
			require.NoError(t, err, "the last good SVID is still served")
			require.Equal(t, first.Certificates[0].Raw, leaf)

			// A new server, with a new SVID, on the same socket.
			f2 := workloadtest.New(t)
			second := f2.SVID(t, workloadtest.WebID, "")
			require.NoError(t, f2.Handler.Set(f2.UID, f2.Snapshot(second)))
			srv.Start(t, endpoint.Config{Handler: f2.Handler})
			for {
				leaf, err = src.leaf()
				require.NoError(t, err)
				if string(leaf) == string(second.Certificates[0].Raw) {
					break
				}
				_, err := workloadtest.Recv(src.updated, timeout)
				require.NoError(t, err, "the source did not pick up the new server's SVID")
			}
		})
	}
}
