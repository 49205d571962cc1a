package atomicfile_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")

	require.NoError(t, atomicfile.Write(path, []byte("one"), 0o600))
	require.NoError(t, atomicfile.Write(path, []byte("two"), 0o640))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, []byte("two"), got, "replaced whole")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o640), info.Mode().Perm(), "mode is exact")

	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")
}

func TestWriteUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "shared")
	require.NoError(t, atomicfile.Write(path, []byte("x"), 0o644))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm(), "the umask does not narrow perm")
}

func TestWriteRelative(t *testing.T) {
	t.Chdir(t.TempDir())
	require.NoError(t, atomicfile.Write("plain", []byte("x"), 0o600))
	got, err := os.ReadFile("plain")
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), got)
}

func TestWriteErrors(t *testing.T) {
	dir := t.TempDir()
	// No such directory: the temporary file cannot be created.
	require.ErrorIs(t, atomicfile.Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600), fs.ErrNotExist)

	// A directory in the way: the rename fails and the temporary file goes.
	target := filepath.Join(dir, "target")
	require.NoError(t, os.Mkdir(target, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(target, "inside"), nil, 0o600))
	require.Error(t, atomicfile.Write(target, []byte("x"), 0o600))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the temporary file was removed")
}

func TestSyncDir(t *testing.T) {
	require.NoError(t, atomicfile.SyncDir(t.TempDir()))
	require.ErrorIs(t, atomicfile.SyncDir(filepath.Join(t.TempDir(), "missing")), fs.ErrNotExist)
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, perm))
		require.NoError(t, os.Chmod(p, perm))
		return p
	}
	exact := write("exact", []byte("12345678"), 0o600)
	long := write("long", []byte("123456789"), 0o600)
	shared := write("shared", []byte("k"), 0o640)
	empty := write("empty", nil, 0o600)

	tests := []struct {
		name    string
		read    func(string, int64) ([]byte, error)
		path    string
		want    []byte
		wantErr string
	}{
		{"at the limit", atomicfile.Read, exact, []byte("12345678"), ""},
		{"private at the limit", atomicfile.ReadPrivate, exact, []byte("12345678"), ""},
		{"empty", atomicfile.ReadPrivate, empty, []byte{}, ""},
		{"over the limit", atomicfile.Read, long, nil, "larger than 8 bytes"},
		{"shared file, public read", atomicfile.Read, shared, []byte("k"), ""},
		{"shared file, private read", atomicfile.ReadPrivate, shared, nil, "permissions 0640"},
		{"directory", atomicfile.Read, dir, nil, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.read(tt.path, 8)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}

	_, err := atomicfile.Read(filepath.Join(dir, "missing"), 8)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestReadChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, []byte("data"), 0o600))
	refused := errors.New("refused")
	var seen fs.FileInfo
	_, err := atomicfile.ReadChecked(path, 8, func(info fs.FileInfo) error {
		seen = info
		return refused
	})
	require.ErrorIs(t, err, refused, "the check's error, as it is")
	require.NotNil(t, seen)
	assert.Equal(t, int64(4), seen.Size(), "the opened file's FileInfo")

	got, err := atomicfile.ReadChecked(path, 8, func(fs.FileInfo) error { return nil })
	require.NoError(t, err)
	assert.Equal(t, []byte("data"), got)

	// Not a regular file: refused before the check.
	_, err = atomicfile.ReadChecked(filepath.Dir(path), 8, func(fs.FileInfo) error {
		t.Error("checked a directory")
		return nil
	})
	require.ErrorContains(t, err, "not a regular file")
}

// WriteFunc streams what its function writes into the new file, which
// replaces the old one only when the function succeeds.
func TestWriteFunc(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	require.NoError(t, atomicfile.Write(path, []byte("old"), 0o600))
	big := strings.Repeat("0123456789", 20_000) // more than the buffer
	require.NoError(t, atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error {
		_, err := io.WriteString(w, big)
		return err
	}))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, big, string(got))

	failed := errors.New("the writer failed")
	require.ErrorIs(t, atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error {
		_, _ = io.WriteString(w, "half")
		return failed
	}), failed)
	got, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, big, string(got), "the old file stays")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "the temporary file was removed")
}

func TestOpenChecked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, []byte("data"), 0o600))
	f, err := atomicfile.OpenChecked(path, nil)
	require.NoError(t, err)
	got, err := io.ReadAll(f)
	require.NoError(t, err)
	assert.Equal(t, "data", string(got))
	require.NoError(t, f.Close())

	refused := errors.New("refused")
	_, err = atomicfile.OpenChecked(path, func(fs.FileInfo) error { return refused })
	require.ErrorIs(t, err, refused)
	_, err = atomicfile.OpenChecked(dir, nil)
	require.ErrorContains(t, err, "is not a regular file")
	_, err = atomicfile.OpenChecked(filepath.Join(dir, "missing"), nil)
	require.ErrorIs(t, err, fs.ErrNotExist)
}
