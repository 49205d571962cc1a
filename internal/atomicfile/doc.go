// Package atomicfile writes files so that a crash never leaves a partial one,
// and reads small files with a size limit and, for secrets, a permission
// check. The CA's key manager, journal and upstream authority keep their
// state with it.
//
// # Usage
//
//	// Replaces path whole: readers see the old content or the new, never a mix.
//	err := atomicfile.Write("/var/lib/ca/journal.json", doc, 0o600)
//
//	// Refuses a file larger than 1 MiB, or one that group or others may access.
//	key, err := atomicfile.ReadPrivate("/var/lib/ca/keys/x509-1.key", 1<<20)
//	cert, err := atomicfile.Read("/etc/ca/upstream.crt", 1<<20)
//
//	// After removing a file, make its removal durable.
//	err = atomicfile.SyncDir("/var/lib/ca/keys")
package atomicfile
