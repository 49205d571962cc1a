// Package reliability holds the fault campaign of the reference programs:
// tests that build spiffe-server and spiffe-agent, run them on real sockets
// over SQLite and PostgreSQL, and break what they depend on while they
// work: SIGKILL at random points (during CA rotation, batch entry writes,
// federation refresh and agent SVID renewal), PostgreSQL restarted under
// load or out of disk space, the data directories out of disk space, and
// the clock stepped an hour forward and back. After each fault they check
// what must hold: no acknowledged entry lost or duplicated, the journal
// and saved state readable, every SVID issued before the fault verifying
// against the bundle until it expires, and recovery without help.
//
// The tests run a few faults each by default, so that the whole suite
// stays fast. SPIFFEKIT_LONG=1 runs the long campaign (scripts/reliability
// runs it); SPIFFEKIT_RELIABILITY_RUNS=N sets the number of runs of each
// kill test; SPIFFEKIT_RELIABILITY_SEED=S replays the random choices of a
// run whose seed a log printed. The tests that mount a tmpfs (disk full)
// need root and say so when they skip. docs/RELIABILITY.md lists the
// faults, the commands that run them and what the runs found.
package reliability
