package unix

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const realStatus = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nPid:\t42\n" +
	"Uid:\t1000\t1001\t1002\t1003\nGid:\t2000\t2001\t2002\t2003\nFDSize:\t64\nGroups:\t4 24 27 \n" +
	"VmPeak:\t    8000 kB\n"

// realStat has a command name with spaces and parentheses, as a process can
// choose its own.
const realStat = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 415483 3133440 382 " +
	"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

func TestParseStatus(t *testing.T) {
	st, err := parseStatus([]byte(realStatus))
	require.NoError(t, err)
	// The effective IDs (second column) are the ones SO_PEERCRED reports.
	assert.Equal(t, procStatus{uid: 1001, gid: 2001, groups: []uint32{4, 24, 27}}, st)

	st, err = parseStatus([]byte("Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n"))
	require.NoError(t, err)
	assert.Empty(t, st.groups)

	tooMany := "Groups:" + strings.Repeat(" 1", maxGroups+1)
	tests := []struct {
		name, in, err string
	}{
		{name: "empty", in: "", err: "no Uid line"},
		{name: "no gid", in: "Uid:\t0\t0\t0\t0\nGroups:\n", err: "no Gid line"},
		{name: "no groups", in: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", err: "no Groups line"},
		{name: "three ids", in: "Uid:\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n", err: "want 4 IDs, got 3"},
		{name: "five ids", in: "Uid:\t0\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n", err: "more than 4 IDs"},
		{name: "negative id", in: "Uid:\t0\t-1\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n", err: `bad ID "-1"`},
		{name: "id over 32 bits", in: "Uid:\t0\t4294967296\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n", err: "bad ID"},
		{name: "bad group", in: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\tx\n", err: "line Groups: bad ID"},
		{name: "too many groups", in: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n" + tooMany, err: "more than 65536 IDs"},
		{name: "two uid lines", in: "Uid:\t0\t0\t0\t0\nUid:\t1\t1\t1\t1\n", err: "more than one Uid"},
		{name: "two gid lines", in: "Gid:\t0\t0\t0\t0\nGid:\t1\t1\t1\t1\n", err: "more than one Gid"},
		{name: "two groups lines", in: "Groups:\nGroups:\n", err: "more than one Groups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseStatus([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
		})
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte(realStat))
	require.NoError(t, err)
	assert.Equal(t, procStat{state: 'S', startTime: 415483}, st)
	assert.False(t, st.exited())
	for _, s := range []byte("ZXx") {
		assert.True(t, procStat{state: s}.exited())
	}

	fields := func(n int) string {
		f := make([]string, n)
		for i := range f {
			f[i] = "7"
		}
		f[0] = "R"
		return "1 (c) " + strings.Join(f, " ")
	}
	st, err = parseStat([]byte(fields(20)))
	require.NoError(t, err, "22 fields are enough")
	assert.Equal(t, procStat{state: 'R', startTime: 7}, st)

	tests := []struct {
		name, in, err string
	}{
		{name: "empty", in: "", err: "no command name"},
		{name: "no parens", in: "1 c S 1", err: "no command name"},
		{name: "close before open", in: "1 )c( S", err: "no command name"},
		{name: "21 fields", in: fields(19), err: "has 21 fields"},
		{name: "bad state", in: strings.Replace(realStat, ") S ", ") SS ", 1), err: `bad state "SS"`},
		{name: "bad start time", in: strings.Replace(realStat, "415483", "41x", 1), err: `bad start time "41x"`},
		{name: "negative start time", in: strings.Replace(realStat, "415483", "-1", 1), err: "bad start time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseStat([]byte(tt.in))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
		})
	}
}

func TestTruncate(t *testing.T) {
	assert.Equal(t, "abc", truncate([]byte("abc")))
	assert.Equal(t, strings.Repeat("a", 32)+"...", truncate([]byte(strings.Repeat("a", 40))))
}

// FuzzParseStatus checks that parseStatus never panics, and that what it
// parses survives being written back in the kernel's format.
func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(realStatus))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStatus(data)
		if err != nil {
			return
		}
		var groups strings.Builder
		for _, g := range st.groups {
			fmt.Fprintf(&groups, "%d ", g)
		}
		again, err := parseStatus(fmt.Appendf(nil, "Uid:\t9\t%d\t9\t9\nGid:\t9\t%d\t9\t9\nGroups:\t%s\n", st.uid, st.gid, groups.String()))
		require.NoError(t, err)
		require.Equal(t, st.uid, again.uid)
		require.Equal(t, st.gid, again.gid)
		require.Equal(t, len(st.groups), len(again.groups))
	})
}

// FuzzParseStat checks that parseStat never panics, and that what it parses
// survives being written back in the kernel's format.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte(realStat))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStat(data)
		if err != nil {
			return
		}
		line := fmt.Sprintf("1 (x) %c 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 %d 0\n", st.state, st.startTime)
		again, err := parseStat([]byte(line))
		require.NoError(t, err)
		require.Equal(t, st, again)
	})
}
