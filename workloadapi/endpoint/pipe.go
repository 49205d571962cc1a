package endpoint

import (
	"errors"
	"strings"
)

// pipePath returns the path of the local named pipe called name, with the
// rules of the client's "npipe:" addresses: '/' and '\' separate elements,
// none may be empty, "." or ".." (Windows would clean them into a path
// outside \\.\pipe\), no NUL, at most 256 characters.
func pipePath(name string) (string, error) {
	name = strings.ReplaceAll(name, "/", `\`)
	switch {
	case name == "":
		return "", errors.New("endpoint: named pipe name is empty")
	case len(name) > 256:
		return "", errors.New("endpoint: named pipe name is longer than 256 characters")
	case strings.ContainsRune(name, 0):
		return "", errors.New("endpoint: named pipe name must not contain NUL")
	}
	for elem := range strings.SplitSeq(name, `\`) {
		if elem == "" || elem == "." || elem == ".." {
			return "", errors.New(`endpoint: named pipe name must not have empty, "." or ".." elements`)
		}
	}
	return `\\.\pipe\` + name, nil
}
