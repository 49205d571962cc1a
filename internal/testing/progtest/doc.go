// Package progtest runs the reference programs, spiffe-server and
// spiffe-agent, as processes for end-to-end tests: it builds them once per
// test binary, starts them on loopback ports and unix sockets in short
// temporary directories, keeps their output, and stops and reaps them when
// the test ends. Test only.
//
// A test package calls [Main] from TestMain (it also provides
// internal/testing/pgtest's PostgreSQL server); a test then builds the
// programs and drives them through their command lines:
//
//	func TestMain(m *testing.M) { progtest.Main(m) }
//
//	func TestServe(t *testing.T) {
//		e := progtest.NewEnv(t, "-x509-svid-ttl", "10s")
//		e.StartServer()
//		e.StartAgent(e.Token())
//		e.Entry(e.AgentID(), "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
//		progtest.WaitFor(t, "the SVID", func() bool { _, code := e.Fetch(); return code == 0 })
//	}
//
// Every wait is bounded ([WaitFor], [Run]); none measures time. A wait
// that fails says what it waited for and what the last command it ran
// answered.
package progtest
