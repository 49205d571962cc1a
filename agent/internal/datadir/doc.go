// Package datadir is a node agent's data directory: the files it holds
// ([SVIDFile], [BundleFile], the key's, the workloads file's), the checks
// that refuse a directory or a file someone other than the agent could
// have changed, the lock that keeps a second agent out, and the agent's
// own state (its SVID, key and bundle), written so that a crash at any
// point leaves the old state or the new one, and read back only when it
// holds together.
//
//	lock, err := datadir.Open(dir) // created 0700, checked, locked
//	defer lock.Close()
//	key, keyData, svid, err := datadir.LoadState(ctx, dir, td, keyStore, files)
//	if errors.Is(err, datadir.ErrNoState) {
//		// attest
//	}
//	err = datadir.SaveState(dir, files, keyData, renewed)
//
// Its errors carry the prefix of package agent, whose they are.
package datadir
