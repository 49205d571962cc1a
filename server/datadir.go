package server

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spiffekit/spiffekit/internal/dirlock"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/server/internal/datadir"
	"github.com/spiffekit/spiffekit/spiffeid"
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
func DataDir(td spiffeid.TrustDomain, dir string) (Config, error) {
	if dir == "" {
		return Config{}, invalidf("the data directory is required")
	}
	st, err := datadir.Open(dir)
	if err != nil {
		return Config{}, err
	}
	return Config{
		TrustDomain: td,
		KeyManager:  st.Keys,
		Journal:     st.Journal,
		ServerID:    st.ServerID,
		DataDirLock: st.Lock,
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
	st, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(dir, datadir.SQLiteFile)})
	if err != nil {
		cfg.DataDirLock.Close()
		return Config{}, nil, fmt.Errorf("server: opening the datastore: %w", err)
	}
	cfg.Stores = StoresOf(st)
	return cfg, st, nil
}
