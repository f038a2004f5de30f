package cli

import (
	"runtime"
	"runtime/debug"
	"testing"
)

// TestDescribe pins what mailkey version says for each way of building it:
// make build or make release (stamped), go install …@v (module version) and
// go build in a checkout (the commit the toolchain recorded).
func TestDescribe(t *testing.T) {
	const rev = "0f9cc1b0aa12e4d1c6a7b1f0c3d2e5f6a7b8c9d0"
	platform := runtime.GOOS + "/" + runtime.GOARCH
	vcs := func(modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	tests := []struct {
		name            string
		version, commit string
		info            *debug.BuildInfo
		want            string
	}{
		{"make release", "v1.2.0", rev, &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("false")},
			"v1.2.0 (commit 0f9cc1b0aa12, go1.26.8 " + platform + ")"},
		{"make build with changes", "v1.2.0-3-g0f9cc1b-dirty", rev, &debug.BuildInfo{GoVersion: "go1.26.8", Settings: vcs("true")},
			"v1.2.0-3-g0f9cc1b-dirty (commit 0f9cc1b0aa12, modified, go1.26.8 " + platform + ")"},
		{"stamped outside a checkout", "v1.2.0", rev, &debug.BuildInfo{GoVersion: "go1.26.8"},
			"v1.2.0 (commit 0f9cc1b0aa12, go1.26.8 " + platform + ")"},
		{"go install at a version", "dev", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}},
			"v1.2.0 (go1.26.8 " + platform + ")"},
		{"go build in a checkout", "dev", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs("true")},
			"dev (commit 0f9cc1b0aa12, modified, go1.26.8 " + platform + ")"},
		{"no build information", "dev", "", nil,
			"dev (" + runtime.Version() + " " + platform + ")"},
	}
	for _, tt := range tests {
		if got := describe(tt.version, tt.commit, tt.info).String(); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
