package testkit

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Binary returns the path of an executable of the main package pkg, built with -race when race is set, copied
// into a directory of the test under name (so that no name-based kill of the package's usual name matches it).
//
// It asks `go run -exec echo` for the executable instead of running `go build -o`: go run keeps what it links in
// the build cache (Go 1.24 and later), so with a warm cache this costs a cache lookup instead of a link (a -race
// link of cmd/tagstream is about 3.5 CPU-s), and the executable is still the one the current sources build.
func Binary(t testing.TB, pkg string, race bool, name string) string {
	t.Helper()
	args := []string{"run"}
	if race {
		args = append(args, "-race")
	}
	args = append(args, "-exec", "echo", pkg)
	var stderr bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	built := strings.TrimSpace(string(out))
	if !filepath.IsAbs(built) || strings.ContainsAny(built, " \n") {
		t.Fatalf("go %s printed %q, want the path of the executable", strings.Join(args, " "), out)
	}
	bin := filepath.Join(t.TempDir(), name)
	if err := copyExecutable(built, bin); err != nil {
		t.Fatalf("copy %s: %v", built, err)
	}
	return bin
}

func copyExecutable(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
