// Package buildinfo says which stackprint a binary is: its version, commit
// and Go version, for `stackprint version`, the man page and the
// stackprint_build_info metric.
//
// The version comes from, in order: the linker (packaging/build.sh and the
// Dockerfile set it from `git describe`:
//
//	-ldflags "-X github.com/stackprint/stackprint/internal/buildinfo.version=1.2.0
//	          -X github.com/stackprint/stackprint/internal/buildinfo.commit=<sha>"
//
// ), the module version Go stamps (`go install …/cmd/stackprint@v1.2.0`,
// or a pseudo-version when built inside a git checkout), else a development
// version naming the commit Go recorded (vcs.revision), else "(devel)".
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Set by the linker (-X); empty in a plain `go build`. Written only at
// link time, never at run time.
var version, commit string

// Info describes the running binary.
type Info struct {
	Version, Commit, GoVersion string
	Modified                   bool // built from a checkout with uncommitted changes
}

// Get returns the running binary's Info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return from(bi, version, commit)
}

// from derives Info from the build info and the linker's values.
func from(bi *debug.BuildInfo, ldVersion, ldCommit string) Info {
	in := Info{Version: "(devel)", Commit: "unknown", GoVersion: "unknown"}
	var rev string
	if bi != nil {
		in.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = strings.TrimPrefix(v, "v")
		} else if rev != "" {
			in.Version = "0.0.0-dev+" + rev[:min(12, len(rev))]
			if in.Modified {
				in.Version += ".dirty"
			}
		}
	}
	if rev != "" {
		in.Commit = rev
	}
	if ldVersion != "" {
		in.Version = strings.TrimPrefix(ldVersion, "v")
	}
	if ldCommit != "" {
		in.Commit = ldCommit
	}
	return in
}
