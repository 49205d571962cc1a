// Package partition tests the reference programs on a network that fails.
// Servers, agents and PostgreSQL each run in a network namespace of their
// own, joined through a router namespace whose every forwarded packet the
// test reads from a TUN device and passes on, drops or delays: a link is
// cut and healed, or made slow and lossy, under real TCP connections
// between real processes, while a workload of the test process watches
// its SVIDs over the Workload API. It has no code of its own; everything
// is in its tests.
//
// The cases, each checking that the workload never holds an SVID that
// expired while a path to a server worked, that the agent recovers by
// itself, and that no entry written is lost:
//
//   - an agent cut off from its only server for longer than half its
//     SVID's lifetime, just after a renewal, with an entry written
//     through the server meanwhile;
//   - one of two servers sharing a PostgreSQL database cut off from the
//     database: the agent moves to the other, the cut server refuses
//     writes with a clear error and serves again after the heal;
//   - 200 ms of delay each way and 10% packet loss between an agent and
//     its server, through attestation, sync and renewals.
//
// The tests need root (network namespaces, veth pairs, a TUN device) and
// the ip command of iproute2; without them they skip, saying why, or fail
// when $SPIFFEKIT_TEST_REQUIRE names netns (CI sets it); under the race
// detector the cases skip, saying so, and TestLab runs. They
// run in the normal suite on a short scale (SVIDs of 20 s, cuts of 12 s,
// one round). SPIFFEKIT_LONG=1 runs the long mode (agent SVIDs of 2
// minutes, cuts of 75 s, 10 rounds of each case);
// SPIFFEKIT_PARTITION_RUNS=N sets the number of rounds. docs/RELIABILITY.md
// has the commands and what the runs found.
package partition
