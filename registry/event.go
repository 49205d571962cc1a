package registry

import "strconv"

// Op is the kind of write an [Event] records.
type Op uint8

// The operations recorded in the change feed.
const (
	OpCreate Op = iota + 1
	OpUpdate
	OpDelete
)

// String returns "create", "update" or "delete".
func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// An Event is one write in a store's change feed.
type Event struct {
	// Seq orders events. It is positive and grows with every write; it is
	// never reused, though a store may skip numbers.
	Seq int64
	// Op says which write this was.
	Op Op
	// EntryID is the ID of the entry written.
	EntryID string
	// Before is the entry before the write; nil for OpCreate.
	Before *Entry
	// After is the entry after the write; nil for OpDelete.
	After *Entry
}

// Entry returns the entry the event concerns as it is after the write, or,
// for OpDelete, as it was when deleted.
func (ev Event) Entry() Entry {
	if ev.After != nil {
		return *ev.After
	}
	if ev.Before != nil {
		return *ev.Before
	}
	return Entry{}
}
