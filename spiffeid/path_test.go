package spiffeid_test

import (
	"testing"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path    string
		wantErr string
		rule    string
	}{
		{"", "", "ID rule 9: empty means no path"},
		{"/a", "", ""},
		{"/a/B/0/.x/x./...", "", "ID rules 10, 13"},
		{"a", "spiffeid: path must have a leading slash", "ID rule 9"},
		{"/", "spiffeid: path cannot have a trailing slash", "ID rule 14"},
		{"/a/", "spiffeid: path cannot have a trailing slash", "ID rule 14"},
		{"//a", "spiffeid: path cannot contain empty segments", "ID rule 12"},
		{"/a//b", "spiffeid: path cannot contain empty segments", "ID rule 12"},
		{"/.", "spiffeid: path cannot contain dot segments", "ID rule 13"},
		{"/..", "spiffeid: path cannot contain dot segments", "ID rule 13"},
		{"/./a", "spiffeid: path cannot contain dot segments", "ID rule 13"},
		{"/a/../b", "spiffeid: path cannot contain dot segments", "ID rule 13"},
		{"/a%41", "spiffeid: path segment characters are limited to letters, numbers, dots, dashes, and underscores", "ID rule 11"},
		{"/a?b", "spiffeid: path segment characters are limited to letters, numbers, dots, dashes, and underscores", "ID rule 16"},
		{"/a#b", "spiffeid: path segment characters are limited to letters, numbers, dots, dashes, and underscores", "ID rule 16"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := spiffeid.ValidatePath(tt.path)
			if tt.wantErr == "" {
				require.NoError(t, err, tt.rule)
			} else {
				require.EqualError(t, err, tt.wantErr, tt.rule)
			}
		})
	}
}

func TestValidatePathSegment(t *testing.T) {
	for seg, wantErr := range map[string]string{
		"a":    "",
		"...":  "",
		"A-_.": "",
		"":     "spiffeid: path cannot contain empty segments",
		".":    "spiffeid: path cannot contain dot segments",
		"..":   "spiffeid: path cannot contain dot segments",
		"a/b":  "spiffeid: path segment characters are limited to letters, numbers, dots, dashes, and underscores",
		"a b":  "spiffeid: path segment characters are limited to letters, numbers, dots, dashes, and underscores",
	} {
		err := spiffeid.ValidatePathSegment(seg)
		if wantErr == "" {
			assert.NoError(t, err, "segment %q", seg)
		} else {
			assert.EqualError(t, err, wantErr, "segment %q", seg)
		}
	}
}

func TestJoinAndFormatPath(t *testing.T) {
	p, err := spiffeid.JoinPathSegments("a", "b", "c")
	require.NoError(t, err)
	assert.Equal(t, "/a/b/c", p)

	p, err = spiffeid.JoinPathSegments()
	require.NoError(t, err)
	assert.Equal(t, "", p)

	_, err = spiffeid.JoinPathSegments("a", "..")
	require.Error(t, err)

	p, err = spiffeid.FormatPath("/ns/%s/sa/%d", "prod", 3)
	require.NoError(t, err)
	assert.Equal(t, "/ns/prod/sa/3", p)

	_, err = spiffeid.FormatPath("/ns/%s", "a b")
	require.Error(t, err)
}
