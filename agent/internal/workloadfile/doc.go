// Package workloadfile is the file in which a node agent saves what it
// serves its workloads, so that, started again while every server is
// away, it serves them at once: the entries it is authorized for, the
// X509-SVIDs and WIT-SVIDs it holds for them with their keys, the
// federated bundles, and the X.509 CAs and JWT and WIT keys the server
// named as tainted. It lives in the agent's data directory
// (agent/internal/datadir), mode 0600, written atomically.
//
//	size, err := workloadfile.Save(dir, td, &workloadfile.Contents{Agent: id, Entries: entries, SVIDs: svids})
//	c, err := workloadfile.Load(dir, td)
//	if errors.Is(err, workloadfile.ErrNotFound) {
//		c, dropped, err = workloadfile.LoadVersion1(dir, td, bundle, now) // an upgraded agent's
//	}
//
// # Versions
//
// The file of versions 2 to 4 (workload-svids.bin) is a JSON header line,
// then binary records closed by their count and SHA-256 (see
// workloads.go); [Save] writes the oldest version that holds what it keeps.
// The file of version 1 (workload-svids.jsonl) was JSON lines; [LoadVersion1]
// reads it once, on an agent's upgrade, and checks each of its SVIDs in
// full. A file that does not hold together is refused whole, and its
// errors name no secret. They carry the prefix of package agent, whose
// they are.
package workloadfile
