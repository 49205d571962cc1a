// Package version tells which build of an example program is running: its
// module version and the VCS revision it was built from, as the Go
// toolchain records them in the binary (runtime/debug.ReadBuildInfo), or
// as a release build sets them with the linker:
//
//	go build -ldflags "-X github.com/spiffekit/spiffekit/examples/internal/version.version=v1.2.0 \
//		-X github.com/spiffekit/spiffekit/examples/internal/version.revision=0123abc" ./examples/spiffe-server
//
// Every program answers "-version" (and "--version"); the programs with
// commands also answer "version". scripts/build builds them reproducibly.
package version

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// Set by the linker (-ldflags -X); empty means what the build info says.
var (
	version  string
	revision string
)

// Info is what a binary knows of its build.
type Info struct {
	// Version is the module's version: the linker's value if set, else the
	// one the Go toolchain stamped (a tag such as v1.2.0, a pseudo-version
	// derived from the VCS, or "(devel)"), else "unknown".
	Version string
	// Revision is the VCS revision (a Git commit), or "" when the build
	// recorded none (built outside a checkout, or with -buildvcs=false).
	Revision string
	// Time is the revision's commit time (RFC 3339), or "".
	Time string
	// Modified reports that the working tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Get returns the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(bi, ok, version, revision)
}

// fromBuildInfo is Get with its sources as arguments: the build info (ok
// false when the binary has none) and the linker's values.
func fromBuildInfo(bi *debug.BuildInfo, ok bool, ldVersion, ldRevision string) Info {
	var i Info
	if ok && bi != nil {
		i.Version = bi.Main.Version
		i.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Revision = s.Value
			case "vcs.time":
				i.Time = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if ldVersion != "" {
		i.Version = ldVersion
	}
	if ldRevision != "" {
		// A revision set by hand says nothing of the tree's state or time.
		i.Revision, i.Time, i.Modified = ldRevision, "", false
	}
	if i.Version == "" {
		i.Version = "unknown"
	}
	return i
}

// String returns the information on one line, such as
// "v1.2.0 (revision 0123abc, 2026-12-06T12:00:00Z, go1.26.0)".
func (i Info) String() string {
	var details []string
	if i.Revision != "" {
		r := "revision " + i.Revision
		if i.Modified {
			r += " with local changes"
		}
		details = append(details, r)
	}
	if i.Time != "" {
		details = append(details, i.Time)
	}
	if i.GoVersion != "" {
		details = append(details, i.GoVersion)
	}
	if len(details) == 0 {
		return i.Version
	}
	return i.Version + " (" + strings.Join(details, ", ") + ")"
}

// IsFlag reports whether arg asks for the version as a flag: "-version"
// or "--version".
func IsFlag(arg string) bool {
	return arg == "-version" || arg == "--version"
}

// Print writes program's name and version on one line to w, as the
// programs answer -version.
func Print(w io.Writer, program string) {
	fmt.Fprintf(w, "%s %s\n", program, Get())
}
