package registry

import (
	"crypto/rand"
	"encoding/hex"
)

// entryIDLen is the length of an entry ID: 128 random bits in lowercase hex.
const entryIDLen = 32

// NewEntryID returns a fresh random entry ID. Stores call it in Create.
func NewEntryID() string {
	var b [entryIDLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// ValidEntryID reports whether id has the form of IDs made by [NewEntryID].
// Stores reject other IDs before they reach a query.
func ValidEntryID(id string) bool {
	if len(id) != entryIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
