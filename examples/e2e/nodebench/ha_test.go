package nodebench

import (
	"fmt"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestMain(m *testing.M) {
	fleetServerMain()
	pgtest.Main(m)
}

// startHAServer starts an issuing server (package server) on PostgreSQL,
// with its state in a data directory, serving the node API on loopback and
// its admin API on a unix socket.
func startHAServer(tb testing.TB, dsn string, poll time.Duration) *nodetest.Server {
	tb.Helper()
	return nodetest.StartServerIn(tb, tb.TempDir(), server.Config{
		Stores:       server.StoresOf(nodetest.OpenPostgreSQL(tb, dsn)),
		PollInterval: poll,
	})
}

// haSetup is two issuing servers, A and B, sharing one PostgreSQL
// database; a real agent connected to B only, with a base entry; and a
// workload watching its X.509 context through the agent. Writes go
// through A's admin API.
type haSetup struct {
	a, b  *nodetest.Server
	agent spiffeid.ID
	w     *idWatcher
	n     int
}

func newHASetup(tb testing.TB, poll time.Duration) *haSetup {
	tb.Helper()
	dsn := pgtest.New(tb)
	a := startHAServer(tb, dsn, poll)
	b := startHAServer(tb, dsn, poll)
	cfg := b.AgentConfig(tb)
	cfg.NodeAttestor = jointoken.NewClient(a.Token(tb)) // a token made through A
	ag := nodetest.StartAgent(tb, cfg)
	a.Register(tb, ag.ID(), "/base")
	waitSynced(tb, ag, 30*time.Second)
	waitFor(tb, 30*time.Second, "the agent holds the base entry", func() bool { return ag.Stats().Entries == 1 })
	return &haSetup{a: a, b: b, agent: ag.ID(), w: watchWorkload(tb, ag.Addr)}
}

// once creates an entry for the workload through A's admin API, waits
// until the workload, served by B's agent, holds its SVID, and returns how
// long that took. It then deletes the entry through A and waits for the
// workload to lose it, untimed.
func (s *haSetup) once(tb testing.TB) time.Duration {
	tb.Helper()
	s.n++
	return s.w.timeEntry(tb, fmt.Sprintf("/across/%d", s.n), s.agent, s.a.Admin.CreateEntry, s.a.Admin.DeleteEntry)
}

// Property: a write through server A reaches a workload behind an agent of
// server B through the database's notifications alone: both servers poll
// only every hour.
func TestWriteOnOneServerReachesAnotherServersWorkload(t *testing.T) {
	s := newHASetup(t, time.Hour)
	for range 3 {
		s.once(t)
	}
}

// BenchmarkWriteAcrossServers measures the time from an entry created
// through server A's admin API to a workload, connected to an agent of
// server B, holding its SVID. A and B share one PostgreSQL database
// (a throwaway server, see internal/testing/pgtest) and run with their
// default poll (30 s): the write commits with its NOTIFY, B's listener
// wakes B's node API, which reads the change feed and pushes the entry to
// the agent, which has B sign the SVID and pushes it to the workload. One
// op is one entry; run with -benchtime=200x.
func BenchmarkWriteAcrossServers(b *testing.B) {
	measure(b, newHASetup(b, 0).once)
}
