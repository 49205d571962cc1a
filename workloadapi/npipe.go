package workloadapi

import (
	"errors"
	"net/url"
	"strings"
)

// maxPipeNameLen is the longest pipe name Windows accepts (the part after
// \\.\pipe\).
const maxPipeNameLen = 256

// pipePrefix is the local named pipe namespace.
const pipePrefix = `\\.\pipe\`

// namedPipeTarget parses an "npipe:NAME" address (WE rule 8 as go-spiffe
// applies it on Windows) into the pipe's path. It is used on Windows only,
// and compiled everywhere so that its rules are tested on every system.
func namedPipeTarget(addr string, u *url.URL) (string, error) {
	switch {
	case u.Opaque == "" && (u.Host != "" || u.User != nil || strings.HasPrefix(addr[len(u.Scheme)+1:], "/")):
		return "", errors.New("workloadapi: workload endpoint named pipe URI must be opaque")
	case u.Opaque == "":
		return "", errors.New("workloadapi: workload endpoint named pipe URI must include an opaque part")
	case u.RawQuery != "" || u.ForceQuery:
		return "", errors.New("workloadapi: workload endpoint named pipe URI must not include query values")
	case u.Fragment != "" || strings.Contains(addr, "#"):
		return "", errors.New("workloadapi: workload endpoint named pipe URI must not include a fragment")
	}
	name, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return "", errors.New("workloadapi: workload endpoint named pipe URI has an invalid escape: " + err.Error())
	}
	return namedPipePath(name)
}

// namedPipePath returns the path of the local pipe named name, where '/'
// and '\' both separate elements ("spire/agent" is \\.\pipe\spire\agent).
// An empty name or element, "." and ".." elements (which Windows would
// clean into a path outside the pipe namespace), NUL and names longer than
// Windows allows are rejected.
func namedPipePath(name string) (string, error) {
	name = strings.ReplaceAll(name, "/", `\`)
	switch {
	case name == "":
		return "", errors.New("workloadapi: workload endpoint named pipe name is empty")
	case len(name) > maxPipeNameLen:
		return "", errors.New("workloadapi: workload endpoint named pipe name is longer than 256 characters")
	case strings.ContainsRune(name, 0):
		return "", errors.New("workloadapi: workload endpoint named pipe name must not contain NUL")
	}
	for elem := range strings.SplitSeq(name, `\`) {
		if elem == "" || elem == "." || elem == ".." {
			return "", errors.New(`workloadapi: workload endpoint named pipe name must not have empty, "." or ".." elements`)
		}
	}
	return pipePrefix + name, nil
}
