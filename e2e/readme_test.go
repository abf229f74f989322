//go:build integration

package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/status"
	"github.com/tagstream/tagstream/internal/testkit"
)

// readmeBlocks returns the shell code blocks of README.md that start with "# terminal N:", in order.
func readmeBlocks(t *testing.T, readme string) []string {
	t.Helper()
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(# terminal [0-9]+:.*?)```").FindAllStringSubmatch(readme, -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// copyRepo copies the files of the repository git knows (tracked, and untracked but not ignored) into a new
// directory, so that the README's commands run as written without touching the working tree.
func copyRepo(t *testing.T, root string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Skipf("git cannot list the repository's files: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(root, f))
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// readmeEnv is the environment of the README's commands: this one without any TAGSTREAM_* variable (the test
// command exports broker addresses that would override the sandbox's file), with a home of its own, and with
// Go's caches where they are (so that nothing is downloaded or compiled again).
func readmeEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "TAGSTREAM_") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_STATE_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	out, err := exec.Command("go", "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	if err != nil {
		t.Fatalf("go env: %v", err)
	}
	vals := strings.Split(strings.TrimSpace(string(out)), "\n")
	return append(env, "HOME="+t.TempDir(), "GOCACHE="+vals[0], "GOMODCACHE="+vals[1], "GOPATH="+vals[2])
}

// terminal is one README block running in bash -e, in a process group of its own (so that a signal reaches
// every process of it, as Ctrl-C in a terminal does).
type terminal struct {
	cmd  *exec.Cmd
	out  *testkit.SyncBuffer
	done chan error
}

func startTerminal(t *testing.T, dir string, env []string, block string) *terminal {
	t.Helper()
	term := &terminal{out: &testkit.SyncBuffer{}, done: make(chan error, 1)}
	term.cmd = exec.Command("bash", "-e", "-c", block)
	term.cmd.Dir, term.cmd.Env, term.cmd.Stdout, term.cmd.Stderr = dir, env, term.out, term.out
	term.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := term.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { term.done <- term.cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(-term.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-term.done:
		case <-time.After(10 * time.Second):
		}
	})
	return term
}

// interrupt sends SIGINT to the terminal's processes, as Ctrl-C does, and returns how the block ended.
func (term *terminal) interrupt(t *testing.T) error {
	t.Helper()
	syscall.Kill(-term.cmd.Process.Pid, syscall.SIGINT)
	return testkit.Receive(t, term.done, time.Minute, "the block to stop after Ctrl-C")
}

// TestTheREADMEPathWorksAsWritten runs the README's "Running it" blocks as a reader does: terminal 1 (the
// sandbox) until it wrote its settings, terminal 2 (build, check, run) until run is ready and every tag was
// polled, then terminal 3 (status, tail) to its end; then Ctrl-C in terminals 2 and 1. It is a process-level test
// (go run, go build, three shells; about a minute) and lives here, with the others, so that it runs in the test
// command (scripts/test.sh) and not in every go test of cmd/tagstream.
func TestTheREADMEPathWorksAsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tagstream and runs the README's commands")
	}
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := readmeBlocks(t, string(readme))
	if len(blocks) != 3 {
		t.Fatalf("README.md has %d blocks that start with \"# terminal N:\", want 3", len(blocks))
	}
	dir := copyRepo(t, "..")
	env := readmeEnv(t)

	sandbox := startTerminal(t, dir, env, blocks[0])
	settings := filepath.Join(dir, "sandbox", "tagstream.yaml")
	testkit.Eventually(t, 5*time.Minute, "terminal 1 to write "+settings, func() bool {
		select {
		case err := <-sandbox.done:
			t.Fatalf("terminal 1 ended (%v):\n%s", err, sandbox.out.String())
		default:
		}
		_, err := os.Stat(settings)
		return err == nil
	})
	body, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^metrics-addr: (\S+)$`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("%s names no metrics-addr:\n%s", settings, body)
	}

	run := startTerminal(t, dir, env, blocks[1])
	testkit.Eventually(t, 5*time.Minute, "terminal 2's run to be ready with every tag polled", func() bool {
		select {
		case err := <-run.done:
			t.Fatalf("terminal 2 ended (%v):\n%s", err, run.out.String())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := status.Fetch(ctx, nil, m[1])
		if err != nil || !r.Ready || len(r.Tags) == 0 {
			return false
		}
		for _, tag := range r.Tags {
			if tag.LastPoll.IsZero() {
				return false
			}
		}
		return true
	})

	look := startTerminal(t, dir, env, blocks[2])
	if err := testkit.Receive(t, look.done, 2*time.Minute, "terminal 3 to end"); err != nil {
		t.Fatalf("terminal 3 failed (%v):\n%s", err, look.out.String())
	}
	out := look.out.String()
	for _, w := range []string{"sink jetstream stream TAGSTREAM: ready", "TAG ", "\nsunset ", "FINGERPRINT"} {
		if !strings.Contains(out, w) {
			t.Errorf("terminal 3 does not show %q:\n%s", w, out)
		}
	}
	if n := strings.Count(out, "  #sunset "); n != 5 {
		t.Errorf("tail printed %d events of #sunset, want 5:\n%s", n, out)
	}
	if !strings.Contains(run.out.String(), "ok    api:") || strings.Contains(run.out.String(), "FAIL") {
		t.Errorf("terminal 2's check did not pass:\n%s", run.out.String())
	}

	if err := run.interrupt(t); err != nil {
		t.Errorf("terminal 2 ended with %v after Ctrl-C, want a clean stop:\n%s", err, run.out.String())
	}
	if !strings.Contains(run.out.String(), "tagstream stopped cleanly") {
		t.Errorf("run did not stop cleanly:\n%s", run.out.String())
	}
	// go run itself exits 1 after Ctrl-C whatever the program's status; what the sandbox says is what counts.
	sandbox.interrupt(t)
	for _, w := range []string{"missing              0", "The simulator and the NATS server keep running until Ctrl-C", "sandbox stopped"} {
		if !strings.Contains(sandbox.out.String(), w) {
			t.Errorf("terminal 1 does not say %q:\n%s", w, sandbox.out.String())
		}
	}
}
