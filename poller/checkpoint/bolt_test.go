package checkpoint

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The kill -9 test re-executes this test binary as a child that Puts in a loop; these variables select that mode.
const (
	childEnvPath = "CHECKPOINT_TEST_CHILD_PATH"
	childTags    = 4
)

func TestMain(m *testing.M) {
	if path := os.Getenv(childEnvPath); path != "" {
		os.Exit(putForever(path))
	}
	os.Exit(m.Run())
}

// putForever is the child: it opens the file and Puts increasing cursors round-robin over a few tags, printing
// "N" on stdout after each Put returned nil (the acknowledgement), until it is killed.
func putForever(path string) int {
	s, err := OpenBolt(path, &BoltOptions{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	// Continue after what a previous child committed, so the file grows across rounds.
	start := 0
	for i := range childTags {
		if st, ok, err := s.Get(context.Background(), fmt.Sprintf("tag_%d", i)); err == nil && ok {
			if n, err := strconv.Atoi(st.Cursor); err == nil && n+1 > start {
				start = n + 1
			}
		}
	}
	w := bufio.NewWriter(os.Stdout)
	for n := start; ; n++ {
		st := State{Cursor: strconv.Itoa(n), Recent: []string{fmt.Sprintf("media-%d", n)}, Updated: time.Now()}
		for i := range 20 { // some bulk so that commits touch several pages
			st.Segments = append(st.Segments, fmt.Sprintf("segment-%d-%d", n, i))
		}
		if err := s.Put(context.Background(), fmt.Sprintf("tag_%d", n%childTags), st); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		fmt.Fprintln(w, n)
		_ = w.Flush()
	}
}

func TestBoltSurvivesKill9(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cursors.db")
	// Each round kills the writer after a different number of acknowledged Puts.
	for round, acks := range []int{1, 37, 150, 400} {
		t.Run(fmt.Sprintf("round %d killed after %d acknowledged puts keeps the last one", round, acks), func(t *testing.T) {
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnvPath+"="+path)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			sc := bufio.NewScanner(stdout)
			last, seen := -1, 0
			for seen < acks && sc.Scan() {
				n, err := strconv.Atoi(sc.Text())
				if err != nil {
					t.Fatalf("child printed %q", sc.Text())
				}
				last, seen = n, seen+1
			}
			if seen < acks {
				t.Fatalf("child stopped after %d acknowledgements: %v", seen, sc.Err())
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// Acknowledgements already written before the kill also count as acknowledged.
			for sc.Scan() {
				if n, err := strconv.Atoi(sc.Text()); err == nil {
					last = n
				}
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die by SIGKILL: %v", err)
			}

			s, err := OpenBolt(path, nil)
			if err != nil {
				t.Fatalf("reopen after kill -9: %v", err)
			}
			defer s.Close()
			tag := fmt.Sprintf("tag_%d", last%childTags)
			got, ok := mustGet(t, s, tag)
			if !ok {
				t.Fatalf("%s missing after kill -9", tag)
			}
			n, err := strconv.Atoi(got.Cursor)
			// The child may have committed one more Put whose acknowledgement it could not print.
			if err != nil || (n != last && n != last+childTags) {
				t.Fatalf("%s: cursor %q after kill -9; last acknowledged %d", tag, got.Cursor, last)
			}
			if len(got.Segments) != 20 || got.Recent[0] != "media-"+got.Cursor {
				t.Fatalf("%s: state torn after kill -9: %+v", tag, got)
			}
			// Every other tag holds some earlier complete state too.
			for i := range childTags {
				if st, ok := mustGet(t, s, fmt.Sprintf("tag_%d", i)); ok && st.Recent[0] != "media-"+st.Cursor {
					t.Fatalf("tag_%d torn: %+v", i, st)
				}
			}
		})
	}
}

func TestOpenBolt(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, dir string)
	}{
		{"a second open of a held file fails with ErrLocked after the timeout", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "cursors.db")
			first, err := OpenBolt(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			_, err = OpenBolt(path, &BoltOptions{LockTimeout: 50 * time.Millisecond})
			if !errors.Is(err, ErrLocked) {
				t.Fatalf("second OpenBolt = %v; want ErrLocked", err)
			}
			if want := path; !containsAll(err.Error(), want, "another") {
				t.Fatalf("error %q should name the file and say another process holds it", err)
			}
		}},
		{"closing releases the lock for the next process", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "cursors.db")
			first, err := OpenBolt(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, first, "t", sampleState(4))
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			second, err := OpenBolt(path, &BoltOptions{LockTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer second.Close()
			if got, ok := mustGet(t, second, "t"); !ok || !sameState(got, sampleState(4)) {
				t.Fatalf("after reopen Get = %+v, %v", got, ok)
			}
		}},
		{"missing parent directories are created with a private file mode", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "a", "b", "cursors.db")
			s, err := OpenBolt(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("mode %v; want 0600", fi.Mode().Perm())
			}
			if s.Path() != path {
				t.Fatalf("Path = %q", s.Path())
			}
		}},
		{"an empty path is refused", func(t *testing.T, _ string) {
			if _, err := OpenBolt("", nil); err == nil {
				t.Fatal("empty path accepted")
			}
		}},
		{"a file that is not a bbolt database is refused", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "garbage.db")
			if err := os.WriteFile(path, []byte("this is not a database, just some bytes that are long enough to look like a header"), 0o600); err != nil {
				t.Fatal(err)
			}
			if s, err := OpenBolt(path, nil); err == nil {
				s.Close()
				t.Fatal("garbage file opened")
			}
		}},
		{"a directory in place of the file is refused", func(t *testing.T, dir string) {
			if s, err := OpenBolt(dir, nil); err == nil {
				s.Close()
				t.Fatal("directory opened as a state file")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, t.TempDir()) })
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
