package unix

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Size limits for what is read from /proc. A status file is about 1.5 KiB,
// but its Groups line grows with the supplementary groups (up to 65536 of
// them); stat is a few hundred bytes.
const (
	maxStatusSize = 1 << 20
	maxStatSize   = 4 << 10
	maxGroups     = 65536
)

// procStatus is what the attestor uses from /proc/<pid>/status.
type procStatus struct {
	uid, gid uint32   // effective IDs, as SO_PEERCRED reports them
	groups   []uint32 // supplementary group IDs
}

// procStat is what the attestor uses from /proc/<pid>/stat.
type procStat struct {
	state     byte   // field 3: R, S, D, Z, X, ...
	startTime uint64 // field 22: clock ticks after boot
}

// exited reports whether the process has exited (zombie or dead).
func (s procStat) exited() bool { return s.state == 'Z' || s.state == 'X' || s.state == 'x' }

// parseStatus reads the Uid, Gid and Groups lines of a /proc/<pid>/status
// file. Uid and Gid carry the real, effective, saved and filesystem IDs; the
// effective ones are the ones the kernel reports for a socket peer. Each of
// the three lines must appear exactly once.
func parseStatus(data []byte) (procStatus, error) {
	var st procStatus
	var seenUID, seenGID, seenGroups bool
	for line := range bytes.Lines(data) {
		key, value, ok := bytes.Cut(bytes.TrimSuffix(line, []byte("\n")), []byte(":"))
		if !ok {
			continue
		}
		var err error
		switch string(key) {
		case "Uid":
			if seenUID {
				return procStatus{}, errors.New("status has more than one Uid line")
			}
			seenUID = true
			st.uid, err = effectiveID(value)
		case "Gid":
			if seenGID {
				return procStatus{}, errors.New("status has more than one Gid line")
			}
			seenGID = true
			st.gid, err = effectiveID(value)
		case "Groups":
			if seenGroups {
				return procStatus{}, errors.New("status has more than one Groups line")
			}
			seenGroups = true
			st.groups, err = parseIDs(value, maxGroups)
		}
		if err != nil {
			return procStatus{}, fmt.Errorf("status line %s: %w", key, err)
		}
	}
	switch {
	case !seenUID:
		return procStatus{}, errors.New("status has no Uid line")
	case !seenGID:
		return procStatus{}, errors.New("status has no Gid line")
	case !seenGroups:
		return procStatus{}, errors.New("status has no Groups line")
	}
	return st, nil
}

// effectiveID returns the second of the four IDs of a Uid or Gid line.
func effectiveID(value []byte) (uint32, error) {
	ids, err := parseIDs(value, 4)
	if err != nil {
		return 0, err
	}
	if len(ids) != 4 {
		return 0, fmt.Errorf("want 4 IDs, got %d", len(ids))
	}
	return ids[1], nil
}

// parseIDs parses whitespace-separated decimal 32-bit IDs, at most max of them.
func parseIDs(value []byte, max int) ([]uint32, error) {
	var ids []uint32
	for f := range bytes.FieldsSeq(value) {
		if len(ids) == max {
			return nil, fmt.Errorf("more than %d IDs", max)
		}
		id, err := strconv.ParseUint(string(f), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad ID %q", truncate(f))
		}
		ids = append(ids, uint32(id))
	}
	return ids, nil
}

// parseStat reads the state (field 3) and start time (field 22) of a
// /proc/<pid>/stat file. Field 2 is the command name in parentheses; it may
// itself contain spaces and parentheses, so the fields after it are found
// after the last ')'.
func parseStat(data []byte) (procStat, error) {
	data = bytes.TrimSuffix(data, []byte("\n"))
	open := bytes.IndexByte(data, '(')
	end := bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return procStat{}, errors.New("stat has no command name in parentheses")
	}
	// Fields 3 and later, counted from 0: field 3 is the state.
	const startTimeIndex = 22 - 3
	var state, startTime []byte
	n := 0
	for f := range bytes.FieldsSeq(data[end+1:]) {
		switch n {
		case 0:
			state = f
		case startTimeIndex:
			startTime = f
		}
		n++
	}
	if n <= startTimeIndex {
		return procStat{}, fmt.Errorf("stat has %d fields, want at least 22", n+2)
	}
	// The state is one ASCII letter (R, S, D, Z, T, t, X, I, ...).
	if len(state) != 1 || !('A' <= state[0] && state[0] <= 'Z' || 'a' <= state[0] && state[0] <= 'z') {
		return procStat{}, fmt.Errorf("stat has bad state %q", truncate(state))
	}
	start, err := strconv.ParseUint(string(startTime), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat has bad start time %q", truncate(startTime))
	}
	return procStat{state: state[0], startTime: start}, nil
}

// truncate keeps error messages short whatever the input.
func truncate(b []byte) string {
	const max = 32
	if len(b) <= max {
		return string(b)
	}
	return string(b[:max]) + "..."
}
