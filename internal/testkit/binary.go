package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Binary returns the path of an executable of the main package pkg, built with -race when race is set, copied
// into a directory of the test under name (so that no name-based kill of the package's usual name matches it).
//
// It runs `go run -exec cp pkg DEST` instead of `go build -o DEST`: go run hands the executable it built to cp
// while it still exists, and it keeps what it links in the build cache when it can (Go 1.24 and later), so with
// a warm cache this often costs a cache lookup instead of a link (a -race link of cmd/tagstream is about 3.5
// CPU-s). The executable is the one the current sources build either way. (An earlier version asked
// `go run -exec echo` for the path and copied it afterwards: when go run had not cached the executable, the path
// was in a temporary directory that go run had removed by then.)
func Binary(t testing.TB, pkg string, race bool, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	args := []string{"run"}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "-exec", "cp", pkg, bin)
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("go %s left no executable at %s (%v)", strings.Join(args, " "), bin, err)
	}
	return bin
}
