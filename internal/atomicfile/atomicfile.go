package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data so that a crash at any moment leaves either
// the old file or the new one, never a mix: the data goes to a temporary file
// ".<name>.tmp-*" in the same directory, which is synced, renamed over path,
// and then the directory itself is synced so that the rename is durable. The
// new file has exactly the mode perm, whatever the umask. On error, the
// temporary file is removed; a crash may leave one behind, which readers of
// path never see.
func Write(path string, data []byte, perm os.FileMode) error {
	return WriteFunc(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFunc is [Write] for data that write produces as it goes, so that a
// large file need not be held in memory whole: what write writes goes,
// buffered, to the temporary file, which replaces path only if write
// returns nil.
func WriteFunc(path string, perm os.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp uses 0600 already; Chmod makes perm exact whatever the umask.
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(tmp, 64<<10)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir makes the directory entries of dir durable: a file created, renamed
// or removed in dir before SyncDir survives a crash after it.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Read reads the regular file at path, which must not exceed limit bytes.
// Errors from opening the file (such as fs.ErrNotExist) are returned as they
// are, for errors.Is.
func Read(path string, limit int64) ([]byte, error) {
	return ReadChecked(path, limit, nil)
}

// ReadPrivate is [Read] for a secret: a file that group or others may read
// or write is refused before it is read.
func ReadPrivate(path string, limit int64) ([]byte, error) {
	return ReadChecked(path, limit, func(info fs.FileInfo) error {
		if info.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("%s has permissions %#o; group and others must have none", path, info.Mode().Perm())
		}
		return nil
	})
}

// ReadChecked is [Read] with a check of the file first: check, when not
// nil, is given the FileInfo of the regular file opened (not of the path,
// which could be replaced between a stat and the open), and its error is
// returned as it is, before anything is read.
func ReadChecked(path string, limit int64, check func(fs.FileInfo) error) ([]byte, error) {
	f, err := OpenChecked(path, check)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than the limit tells a file of exactly limit bytes from
	// a longer one, without reading an attacker's huge file whole.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// OpenChecked opens the regular file at path for reading, after check,
// when not nil, accepted the FileInfo of the file opened (not of the path,
// which could be replaced between a stat and the open); check's error is
// returned as it is. Errors from opening the file (such as
// fs.ErrNotExist) are returned as they are, for errors.Is. The caller
// closes the file, and bounds what it reads.
func OpenChecked(path string, check func(fs.FileInfo) error) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil && check != nil {
		err = check(info)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
