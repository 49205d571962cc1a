// Package attest describes workloads with selectors and defines the interface
// of workload attestors, which derive selectors from a process that connected
// to the Workload API.
//
// A [Selector] is a typed property of a workload, written "type:value", for
// example "unix:uid:1000". [Selectors] is an immutable, sorted set of them; a
// registration entry matches a workload when the workload's selectors contain
// all of the entry's selectors ([Selectors.ContainsAll]).
//
// A [WorkloadAttestor] inspects the process described by a [Workload] (its
// PID, and what the kernel reported for the connection) and returns its
// selectors. The unix attestor lives in package attest/unix. [Combine] joins
// several attestors into one whose selectors are the union of theirs.
//
// # Usage
//
//	var a attest.WorkloadAttestor = unixAttestor // e.g. from unix.New
//	got, err := a.Attest(ctx, attest.Workload{
//		PID:         caller.PID,
//		Credentials: &attest.Credentials{UID: caller.UID, GID: caller.GID},
//	})
//	if errors.Is(err, attest.ErrRejected) {
//		return status.Error(codes.PermissionDenied, "attestation failed")
//	}
//	want := attest.NewSelectors(attest.Selector{Type: "unix", Value: "uid:1000"})
//	if err == nil && got.ContainsAll(want) {
//		// issue the identities registered for want
//	}
package attest
