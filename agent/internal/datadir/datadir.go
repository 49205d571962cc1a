package datadir

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/dirlock"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/publickey"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Files the agent keeps in its data directory, beside the lock
// (dirlock.FileName). The key's are those of the agent's KeyStore (see
// KeyFiles): with the default one, KeyFile and "agent-key.next.pem", the
// key of an SVID being saved.
const (
	// SVIDFile is the agent SVID, its certificates in PEM.
	SVIDFile = "agent-svid.pem"
	// KeyFile is the file of the default KeyStore's key: PKCS #8 PEM.
	KeyFile = "agent-key.pem"
	// BundleFile is the trust domain's bundle, the agent's trust anchor.
	BundleFile = "bundle.json"
	// WorkloadsFile is what the agent serves its workloads, saved (see
	// agent/internal/workloadfile).
	WorkloadsFile = "workload-svids.bin"
	// OldWorkloadsFile is the workloads file of version 1, which an
	// upgraded agent reads once.
	OldWorkloadsFile = "workload-svids.jsonl"
)

// maxFile bounds the files of the agent's own state.
const maxFile = 1 << 20

// mkdirPrivate creates dir with mode 0700 if it is missing, and its
// missing parents with mode 0755: only the data directory itself is
// private, so that a parent it shares with the Workload API socket (the
// README's /tmp/agent/api.sock beside /tmp/agent/data) still lets every
// user reach the socket.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// Open makes the data directory ready for the agent before it attests, so
// that a local failure costs no join token: it creates dir (mode 0700) if
// missing, checks that nobody but the agent's uid and root can change what
// it holds, and locks it for this agent (see internal/dirlock), naming the
// holder when another agent has it. The caller closes the lock.
func Open(dir string) (*dirlock.Lock, error) {
	if err := mkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("agent: creating the data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := checkDataDir(dir, fi, os.Geteuid()); err != nil {
		return nil, err
	}
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return lock, nil
}

// checkDataDir refuses a data directory, of FileInfo fi, that group or
// others may write to, or that is owned by another uid than euid (the
// agent's) and root: whoever can write to it can replace the saved
// bundle, the agent's trust anchor, and the agent SVID. Root's
// directories are accepted, since root can change the agent's files
// anyway.
func checkDataDir(dir string, fi fs.FileInfo, euid int) error {
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("agent: data directory %s has mode %04o: group and others must not be able to write to it, "+
			"since it holds the agent's trust bundle (chmod go-w %s)", dir, perm, dir)
	}
	if owner := ownerOf(fi); owner >= 0 && owner != euid && owner != 0 {
		return fmt.Errorf("agent: data directory %s is owned by uid %d; it must be owned by the agent's uid %d or by root",
			dir, owner, euid)
	}
	return nil
}

// ownerOf returns the uid owning the file of fi, or -1 if fi does not
// tell.
func ownerOf(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// KeyFiles names the files of the data directory that keep the key of the
// agent's KeyStore: the key of the saved SVID, and the key of an SVID
// being saved (see SaveState).
type KeyFiles struct{ Key, Next string }

// SaveState writes the agent's SVID, key (mode 0600: keyData, in the files
// of kf) and bundle to dir,
// each atomically, in an order that a crash at any point leaves a state
// LoadState takes, the old one or the new one: the new key goes to a file
// of its own first, then the bundle (which still verifies the old SVID:
// the CA that signed it stays in the bundle while it is valid), then the
// SVID, and last the new key replaces the old one. Between the SVID and
// the last step, LoadState finds the SVID's key in the file of its own.
// Writing the key over the old one first, as it once was, left a key
// without its certificate after a crash, and an agent whose join token
// was spent could not start again. An empty dir keeps nothing.
func SaveState(dir string, kf KeyFiles, keyData []byte, svid *nodeapi.AgentSVID) error {
	if dir == "" {
		return nil
	}
	if err := mkdirPrivate(dir); err != nil {
		return fmt.Errorf("agent: creating the data directory: %w", err)
	}
	doc, err := svid.Bundle.Marshal()
	if err != nil {
		return fmt.Errorf("agent: encoding the bundle: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{kf.Next, keyData, 0o600},
		{BundleFile, doc, 0o644},
		{SVIDFile, pemutil.EncodeCertificates(svid.Certificates), 0o644},
	} {
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, f.perm); err != nil {
			return fmt.Errorf("agent: saving %s: %w", f.name, err)
		}
	}
	if err := os.Rename(filepath.Join(dir, kf.Next), filepath.Join(dir, kf.Key)); err != nil {
		return fmt.Errorf("agent: saving %s: %w", kf.Key, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("agent: saving %s: %w", kf.Key, err)
	}
	return nil
}

// SaveBundle replaces the saved bundle of dir. An empty dir keeps nothing.
func SaveBundle(dir string, b *spiffebundle.Bundle) error {
	if dir == "" {
		return nil
	}
	doc, err := b.Marshal()
	if err != nil {
		return fmt.Errorf("agent: encoding the bundle: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(dir, BundleFile), doc, 0o644); err != nil {
		return fmt.Errorf("agent: saving the bundle: %w", err)
	}
	return nil
}

// ErrNoState means the data directory holds no saved SVID: LoadState
// returns it.
var ErrNoState = errors.New("agent: no saved SVID")

// ErrUnsafeFile marks a file of the data directory that someone other than
// the agent could have written (see CheckFile): unlike state that does not
// hold together, which the agent ignores, it is refused. The errors of
// CheckFile, and those LoadState returns for such a file, are it.
var ErrUnsafeFile = errors.New("agent: unsafe data directory file")

// unsafeFileError is a file of the data directory the agent refuses to
// read. It is ErrUnsafeFile.
type unsafeFileError struct{ msg string }

func (e *unsafeFileError) Error() string        { return e.msg }
func (e *unsafeFileError) Is(target error) bool { return target == ErrUnsafeFile }

// CheckFile returns the check of a file of the data directory before
// the agent, of uid euid, reads it: the agent wrote the file, so euid must
// own it; group and others must not be able to write to it (the bundle is
// the agent's trust anchor, the SVID and key its identity), and, for the
// key (secret), not read it either. The directory is checked too (see
// checkDataDir), but a file that was given away or opened up inside it
// would escape that check.
func CheckFile(path string, euid int, secret bool) func(fs.FileInfo) error {
	return func(fi fs.FileInfo) error {
		if owner := ownerOf(fi); owner >= 0 && owner != euid {
			return &unsafeFileError{fmt.Sprintf("agent: data directory file %s is owned by uid %d, not by the agent's uid %d: its owner could change it (chown %d %s)",
				path, owner, euid, euid, path)}
		}
		perm := fi.Mode().Perm()
		if secret && perm&0o077 != 0 {
			return &unsafeFileError{fmt.Sprintf("agent: data directory file %s has mode %04o: it holds the agent's private key, which only the agent may read (chmod 0600 %s)",
				path, perm, path)}
		}
		if perm&0o022 != 0 {
			return &unsafeFileError{fmt.Sprintf("agent: data directory file %s has mode %04o: group and others must not be able to write to it (chmod go-w %s)",
				path, perm, path)}
		}
		return nil
	}
}

// readStateFile reads the file name of the data directory dir, after
// CheckFile.
func readStateFile(dir, name string, secret bool) ([]byte, error) {
	path := filepath.Join(dir, name)
	return atomicfile.ReadChecked(path, maxFile, CheckFile(path, os.Geteuid(), secret))
}

// A KeyLoader gives back a key of the agent's from the bytes that keep it:
// the agent's KeyStore.
type KeyLoader interface {
	// LoadKey returns the key that data keeps, or fails saying why.
	LoadKey(ctx context.Context, data []byte) (crypto.Signer, error)
}

// LoadState reads what SaveState wrote and checks that it holds together:
// the key, which ks loads from its file, matches the certificate, which is
// an SVID of td that verifies with the saved bundle. It does not check
// expiry. It returns ErrNoState when dir is empty or holds no SVID. A file
// that the agent's uid does not own, or that others may change (see
// CheckFile), is refused with an error that is ErrUnsafeFile. It returns
// the key with the bytes that keep it.
func LoadState(ctx context.Context, dir string, td spiffeid.TrustDomain, ks KeyLoader, kf KeyFiles) (crypto.Signer, []byte, *nodeapi.AgentSVID, error) {
	if dir == "" {
		return nil, nil, nil, ErrNoState
	}
	certPEM, err := readStateFile(dir, SVIDFile, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, ErrNoState
	}
	if errors.Is(err, ErrUnsafeFile) {
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent: reading the saved SVID: %w", err)
	}
	keyData, err := readStateFile(dir, kf.Key, true)
	if errors.Is(err, ErrUnsafeFile) {
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent: reading the saved key: %w", err)
	}
	doc, err := readStateFile(dir, BundleFile, false)
	if errors.Is(err, ErrUnsafeFile) {
		return nil, nil, nil, err
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent: reading the saved bundle: %w", err)
	}
	certs, err := pemutil.ParseCertificates(certPEM)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent: the saved SVID: %w", err)
	}
	key, err := ks.LoadKey(ctx, keyData)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent: the saved key (%s): %w", filepath.Join(dir, kf.Key), err)
	}
	b, err := spiffebundle.Parse(td, doc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent: the saved bundle: %w", err)
	}
	if !publickey.Equal(certs[0].PublicKey, key.Public()) {
		// A crash in SaveState between the SVID and the key leaves the
		// SVID's key in a file of its own.
		if key, keyData, err = loadNextKey(ctx, dir, ks, kf, certs[0]); err != nil {
			return nil, nil, nil, err
		}
	}
	id, _, err := x509svid.Verify(certs, b, x509svid.WithTime(certs[0].NotBefore))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("agent: the saved SVID: %w", err)
	}
	return key, keyData, &nodeapi.AgentSVID{ID: id, Certificates: certs, Bundle: b}, nil
}

// loadNextKey returns the key SaveState left in a file of its own, if it is
// the key of leaf.
func loadNextKey(ctx context.Context, dir string, ks KeyLoader, kf KeyFiles, leaf *x509.Certificate) (crypto.Signer, []byte, error) {
	mismatch := errors.New("agent: the saved key does not match the saved SVID")
	data, err := readStateFile(dir, kf.Next, true)
	if errors.Is(err, ErrUnsafeFile) {
		return nil, nil, err
	}
	if err != nil {
		return nil, nil, mismatch
	}
	key, err := ks.LoadKey(ctx, data)
	if err != nil || !publickey.Equal(leaf.PublicKey, key.Public()) {
		return nil, nil, mismatch
	}
	return key, data, nil
}
