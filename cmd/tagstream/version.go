package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3"; otherwise the module version is used.
var version = ""

// Version returns the version of this build.
func Version() string {
	bi, _ := debug.ReadBuildInfo()
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) string {
	if version != "" {
		return version
	}
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return v
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

func runVersion(c *cli, args []string) int {
	fs := c.newFlagSet("version", "", "Print the version of tagstream, the Go toolchain that built it and the modules it embeds, with their versions.")
	if code, stop := c.parseFlags(fs, args); stop {
		return code
	}
	bi, _ := debug.ReadBuildInfo()
	writeVersion(c.stdout, bi)
	return exitOK
}

// writeVersion prints the version line, then the Go version and every module dependency compiled in, as the
// binary's build information records them (what `go version -m` shows).
func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	fmt.Fprintf(w, "tagstream %s (%s %s/%s)\n", versionOf(bi), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if bi == nil {
		fmt.Fprintln(w, "no build information embedded")
		return
	}
	fmt.Fprintf(w, "go\t%s\n", bi.GoVersion)
	if bi.Main.Path != "" {
		fmt.Fprintf(w, "mod\t%s\t%s\n", bi.Main.Path, bi.Main.Version)
	}
	for _, d := range bi.Deps {
		line := fmt.Sprintf("dep\t%s\t%s", d.Path, d.Version)
		if r := d.Replace; r != nil {
			line += fmt.Sprintf("\t=> %s %s", r.Path, r.Version)
		}
		fmt.Fprintln(w, line)
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "-race", "CGO_ENABLED", "GOARCH", "GOOS", "vcs.revision", "vcs.time", "vcs.modified":
			fmt.Fprintf(w, "build\t%s=%s\n", s.Key, s.Value)
		}
	}
}
