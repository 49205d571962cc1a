// Package datadir keeps an issuing server's own state in a directory: its
// CA keys, its CA journal and its server ID, under a lock that gives the
// directory to one server at a time.
package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/dirlock"
	"github.com/spiffekit/spiffekit/registry"
)

// Names of the files kept in the data directory.
const (
	keysDir      = "keys"
	journalFile  = "ca-journal.json"
	serverIDFile = "server-id"
	// SQLiteFile is the name of the SQLite datastore a server may keep
	// beside its own state.
	SQLiteFile = "datastore.sqlite3"
)

// State is what a server keeps in its data directory.
type State struct {
	// Keys keeps the CA keys in dir/keys (mode 0600).
	Keys *keymanager.Disk
	// Journal is the CA journal, dir/ca-journal.json.
	Journal *rotation.FileJournal
	// ServerID is the server's stable ID, kept in dir/server-id.
	ServerID string
	// Lock holds the directory for this server alone until closed.
	Lock *dirlock.Lock
}

// Open creates dir with mode 0700 if missing, locks it (the error wraps
// dirlock.ErrInUse when another holder has it) and returns the state kept
// in it, making the server ID on first use. The caller closes the lock;
// Open closes it when it fails.
func Open(dir string) (_ State, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return State{}, fmt.Errorf("server: creating the data directory: %w", err)
	}
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		return State{}, fmt.Errorf("server: %w", err)
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	id, err := loadServerID(dir)
	if err != nil {
		return State{}, err
	}
	keys, err := keymanager.NewDisk(filepath.Join(dir, keysDir))
	if err != nil {
		return State{}, fmt.Errorf("server: %w", err)
	}
	return State{
		Keys:     keys,
		Journal:  rotation.NewFileJournal(filepath.Join(dir, journalFile)),
		ServerID: id,
		Lock:     lock,
	}, nil
}

// loadServerID reads the server's stable ID from the data directory,
// creating it on first start.
func loadServerID(dir string) (string, error) {
	path := filepath.Join(dir, serverIDFile)
	b, err := atomicfile.Read(path, 256)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("server: reading the server ID: %w", err)
	}
	id, err := NewServerID()
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server: saving the server ID: %w", err)
	}
	return id, nil
}

// NewServerID returns a fresh server ID: the host name and a random part,
// or the random part alone where the host name would make it longer than
// registry.MaxServerIDLen.
func NewServerID() (string, error) {
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("server: %w", err)
	}
	host, _ := os.Hostname()
	id := strings.Trim(host+"-"+hex.EncodeToString(raw), "-")
	if len(id) > registry.MaxServerIDLen {
		id = hex.EncodeToString(raw)
	}
	return id, nil
}
