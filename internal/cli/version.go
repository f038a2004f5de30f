package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are set at build time (make build, make release) with
// -ldflags "-X github.com/mailkey/mailkey/internal/cli.Version=… -X …Commit=…".
// A build that sets neither, such as go install, is described by what the Go
// toolchain recorded in the binary instead (see buildVersion).
var (
	Version = "dev"
	Commit  = ""
)

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	v := buildVersion()
	fmt.Fprintf(e.stdout, "mailkey %s\n", v)
	return nil
}

// build says what a binary was built from.
type build struct {
	Version  string // v1.2.0, a git describe, or "dev"
	Commit   string // the full commit id, or "" when nothing recorded it
	Modified bool   // the checkout had uncommitted changes
	Go       string // the toolchain, such as go1.26.8
	Platform string // GOOS/GOARCH
}

// String is the one line mailkey version prints:
// "v1.2.0 (commit 0f9cc1b0aa12, go1.26.8 linux/amd64)".
func (b build) String() string {
	s := b.Version + " ("
	if b.Commit != "" {
		c := b.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		s += "commit " + c
		if b.Modified {
			s += ", modified"
		}
		s += ", "
	}
	return s + b.Go + " " + b.Platform + ")"
}

// buildVersion is Version and Commit when the build set them, completed by
// what the Go toolchain recorded: the module's version for go install …@VERSION,
// the commit a build from a checkout was made of, and the Go version.
func buildVersion() build {
	info, _ := debug.ReadBuildInfo()
	return describe(Version, Commit, info)
}

// describe is buildVersion for given stamps and build information (nil when
// the binary has none).
func describe(version, commit string, info *debug.BuildInfo) build {
	b := build{Version: version, Commit: commit, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info == nil {
		return b
	}
	if info.GoVersion != "" {
		b.Go = info.GoVersion
	}
	if b.Version == "dev" {
		if v := info.Main.Version; v != "" && v != "(devel)" {
			b.Version = v
		}
	}
	var rev string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	if b.Commit == "" {
		b.Commit = rev
	} else if rev != b.Commit {
		// The stamp names a commit the toolchain did not see (a build from
		// an exported tree): whether it was modified is not known.
		b.Modified = false
	}
	return b
}
