package rotation

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/spiffekit/spiffekit/internal/atomicfile"
)

// MaxJournalSize bounds the journal document a [Journal] may return.
const MaxJournalSize = 4 << 20

// A Journal stores the manager's state document: which X.509 CAs and JWT keys
// exist, their certificates, states and key IDs, and the bundle sequence
// number. The [Manager] encodes, versions and checksums the document; a Journal
// only has to store bytes and replace them atomically. It must be safe for
// concurrent use.
type Journal interface {
	// Load returns the stored document, or nil and no error when nothing
	// has been stored yet. It must not return more than MaxJournalSize
	// bytes.
	Load(ctx context.Context) ([]byte, error)

	// Store replaces the document. When Store returns, the new document is
	// durable; if it fails or the process dies during Store, Load returns
	// either the old document or the new one, never a mix.
	Store(ctx context.Context, doc []byte) error
}

// FileJournal is a [Journal] kept in one file with mode 0600; a journal file
// that group or others may access is refused on Load. Store writes a
// temporary file in the same directory, syncs it, renames it over the journal
// and syncs the directory. FileJournal is safe for concurrent use; two
// processes must not share a journal file.
type FileJournal struct {
	path string
	mu   sync.Mutex
}

var _ Journal = (*FileJournal)(nil)

// NewFileJournal returns a journal stored at path. Its directory is created
// with mode 0700 if missing, on the first Store.
func NewFileJournal(path string) *FileJournal {
	return &FileJournal{path: path}
}

// Load reads the journal file. A missing file means an empty journal; an
// empty or oversized file is an error.
func (j *FileJournal) Load(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rotation: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	data, err := atomicfile.ReadPrivate(j.path, MaxJournalSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("rotation: cannot read journal: %w", err)
	}
	if len(data) == 0 {
		// Never read as "no journal": that would start a new trust domain
		// over the keys of the old one.
		return nil, fmt.Errorf("%w: journal file %s is empty", ErrCorruptJournal, j.path)
	}
	return data, nil
}

// Store replaces the journal file atomically.
func (j *FileJournal) Store(ctx context.Context, doc []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rotation: %w", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return fmt.Errorf("rotation: cannot create journal directory: %w", err)
	}
	if err := atomicfile.Write(j.path, doc, 0o600); err != nil {
		return fmt.Errorf("rotation: cannot write journal: %w", err)
	}
	return nil
}

// memoryJournal is the journal of a Manager configured without one.
type memoryJournal struct {
	mu  sync.Mutex
	doc []byte
}

func (j *memoryJournal) Load(context.Context) ([]byte, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.doc), nil
}

func (j *memoryJournal) Store(_ context.Context, doc []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.doc = slices.Clone(doc)
	return nil
}
