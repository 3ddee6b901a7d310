package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestVersionSources(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "2439178b266282cf520db94a2ffd2273bdf12e7e"}, {Key: "vcs.modified", Value: "false"}}
	for _, c := range []struct {
		name      string
		bi        *debug.BuildInfo
		ldv, ldc  string
		wantV     string
		wantC     string
		wantGoVer string
	}{
		{"no build info", nil, "", "", "(devel)", "unknown", "unknown"},
		{"plain go build outside a checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", "", "(devel)", "unknown", "go1.26.8"},
		{"go install module@version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}}, "", "", "1.2.0", "unknown", "go1.26.8"},
		{"inside a checkout: Go's pseudo-version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261206074733-2439178b2662"}, Settings: vcs}, "", "",
			"0.0.0-20261206074733-2439178b2662", "2439178b266282cf520db94a2ffd2273bdf12e7e", "go1.26.8"},
		{"a revision without a module version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: append(vcs[:1:1], debug.BuildSetting{Key: "vcs.modified", Value: "true"})}, "", "", "0.0.0-dev+2439178b2662.dirty", "2439178b266282cf520db94a2ffd2273bdf12e7e", "go1.26.8"},
		{"the linker's values win", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "v1.3.0+git5.gabc", "abc",
			"1.3.0+git5.gabc", "abc", "go1.26.8"},
	} {
		got := from(c.bi, c.ldv, c.ldc)
		if got.Version != c.wantV || got.Commit != c.wantC || got.GoVersion != c.wantGoVer {
			t.Errorf("%s: %+v, want %s %s %s", c.name, got, c.wantV, c.wantC, c.wantGoVer)
		}
	}
}
