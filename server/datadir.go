package server

import (
	"context"
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
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Names of the files DataDir and OpenSQLite keep in the data directory.
const (
	keysDir      = "keys"
	journalFile  = "ca-journal.json"
	serverIDFile = "server-id"
	sqliteFile   = "datastore.sqlite3"
)

// DataDir returns a Config for trust domain td whose own state lives in
// dir, created with mode 0700 if missing: the CA keys (dir/keys, mode 0600,
// see keymanager.Disk), the CA journal (dir/ca-journal.json) and the
// server ID (dir/server-id, made on first use), so that a restarted server
// keeps its CA and its name. The caller sets Config.Stores, for example to
// a PostgreSQL database shared by several servers, each with its own
// dir; [OpenSQLite] keeps them in dir too.
//
// One server at a time may use dir: DataDir locks it (an advisory flock on
// dir/lock, which names the holder's pid) and puts the lock in
// Config.DataDirLock, which the [Server] made from the Config releases
// when it is closed. Until then, DataDir and OpenSQLite on the same dir,
// in this process or another, fail with an error wrapping
// [ErrDataDirInUse] that names the holder: "data directory /x is in use
// by pid 1234". Two servers on one directory would otherwise write the
// journal over each other and lose CAs.
func DataDir(td spiffeid.TrustDomain, dir string) (_ Config, err error) {
	if dir == "" {
		return Config{}, invalidf("the data directory is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Config{}, fmt.Errorf("server: creating the data directory: %w", err)
	}
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		return Config{}, fmt.Errorf("server: %w", err)
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	id, err := loadServerID(dir)
	if err != nil {
		return Config{}, err
	}
	keys, err := keymanager.NewDisk(filepath.Join(dir, keysDir))
	if err != nil {
		return Config{}, fmt.Errorf("server: %w", err)
	}
	return Config{
		TrustDomain: td,
		KeyManager:  keys,
		Journal:     rotation.NewFileJournal(filepath.Join(dir, journalFile)),
		ServerID:    id,
		DataDirLock: lock,
	}, nil
}

// ErrDataDirInUse is wrapped by the errors of [DataDir] and [OpenSQLite]
// when another holder has the data directory locked.
var ErrDataDirInUse = dirlock.ErrInUse

// OpenSQLite returns the Config of [DataDir] with its Stores in a SQLite
// database in dir (dir/datastore.sqlite3, created if missing), and the
// store, which the caller closes once the server is closed. The node
// attestor is join_token, the default. ctx bounds the opening only. The
// data directory is locked as DataDir locks it.
//
//	cfg, store, err := server.OpenSQLite(ctx, td, "/var/lib/spiffe-server")
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	cfg.AdminSocket = "/run/spiffe-server/admin.sock"
//	s, err := server.New(ctx, cfg)
func OpenSQLite(ctx context.Context, td spiffeid.TrustDomain, dir string) (Config, *sqlstore.Store, error) {
	cfg, err := DataDir(td, dir)
	if err != nil {
		return Config{}, nil, err
	}
	st, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(dir, sqliteFile)})
	if err != nil {
		cfg.DataDirLock.Close()
		return Config{}, nil, fmt.Errorf("server: opening the datastore: %w", err)
	}
	cfg.Stores = StoresOf(st)
	return cfg, st, nil
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
	id, err := newServerID()
	if err != nil {
		return "", err
	}
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server: saving the server ID: %w", err)
	}
	return id, nil
}

// newServerID returns a fresh server ID: the host name and a random part.
func newServerID() (string, error) {
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
