package poller

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
	"github.com/tagstream/tagstream/schema"
	"github.com/tagstream/tagstream/testenv"
)

// The kill -9 test re-executes the test binary as a child process that runs a Poller with the bbolt checkpoint
// store and a publisher that appends "tag<TAB>media id" lines to a file (written before Publish returns, so a line
// exists for every acknowledged event). These variables configure the child.
const (
	childEnv      = "TAGSTREAM_POLLER_CRASH_CHILD"
	childURLEnv   = "TAGSTREAM_POLLER_CRASH_URL"
	childTokenEnv = "TAGSTREAM_POLLER_CRASH_TOKEN"
	childStateEnv = "TAGSTREAM_POLLER_CRASH_STATE"
	childOutEnv   = "TAGSTREAM_POLLER_CRASH_OUT"
	childTagsEnv  = "TAGSTREAM_POLLER_CRASH_TAGS"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(crashChild())
	}
	testkit.ParallelWaiters(8)
	os.Exit(m.Run())
}

// filePublisher appends one line per event to a file before acknowledging.
type filePublisher struct {
	mu sync.Mutex
	f  *os.File
}

func (p *filePublisher) Publish(_ context.Context, events []*schema.Event) error {
	var b strings.Builder
	for _, e := range events {
		if e.Data != nil {
			fmt.Fprintf(&b, "%s\t%s\n", e.Subject, e.Data.MediaID)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.f.WriteString(b.String())
	return err
}

// crashChild is the child's main: poll until SIGTERM (or until killed).
func crashChild() int {
	store, err := checkpoint.OpenBolt(os.Getenv(childStateEnv), &checkpoint.BoltOptions{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer store.Close()
	out, err := os.OpenFile(os.Getenv(childOutEnv), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	defer out.Close()
	cfg := Config{
		BaseURL:        os.Getenv(childURLEnv),
		Tokens:         []Token{{Value: os.Getenv(childTokenEnv)}},
		RateWindow:     time.Second,
		Tags:           strings.Split(os.Getenv(childTagsEnv), ","),
		Start:          StartBackfill,
		BackfillPages:  100,
		MinInterval:    10 * time.Millisecond,
		MaxInterval:    100 * time.Millisecond,
		BackoffInitial: 5 * time.Millisecond,
		BackoffMax:     100 * time.Millisecond,
		PageSize:       10,
		CatchUpPages:   5,
	}
	p, err := New(cfg, &filePublisher{f: out}, store, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := p.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// startChild runs the test binary as a crash child writing to out.
func startChild(t *testing.T, srv *testenv.Server, token, state, out string, tags []string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childURLEnv+"="+srv.URL(), childTokenEnv+"="+token,
		childStateEnv+"="+state, childOutEnv+"="+out, childTagsEnv+"="+strings.Join(tags, ","))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// readLines returns the published (tag, media id) lines of a child's output file, in order.
func readLines(t *testing.T, path string) [][2]string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		tag, id, ok := strings.Cut(sc.Text(), "\t")
		if ok { // a line cut short by the kill has no tab yet or an incomplete id; complete lines end in \n
			out = append(out, [2]string{tag, id})
		}
	}
	return out
}

// TestKillNineAndRestart kills a polling child process with SIGKILL in the middle of steady posting and restarts it
// on the same bbolt checkpoint file: every media reaches the output, and the only repeats are the last batch of a
// tag that was published but not yet committed when the child died.
func TestKillNineAndRestart(t *testing.T) {
	t.Parallel()
	tags := []string{"crash_a", "crash_b", "crash_c"}
	const token = "crash-test-token-1"
	sim := testenv.Config{PlainHTTP: true, Tokens: []string{token}}
	for _, tag := range tags {
		sim.Tags = append(sim.Tags, testenv.TagConfig{Name: tag, Rate: 150})
	}
	srv := startSim(t, sim)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.db")
	out1, out2 := filepath.Join(dir, "run1.tsv"), filepath.Join(dir, "run2.tsv")

	child := startChild(t, srv, token, state, out1, tags)
	testkit.Eventually(t, 30*time.Second, "the first child to publish", func() bool { return len(readLines(t, out1)) >= 300 })
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	run1 := readLines(t, out1)

	child = startChild(t, srv, token, state, out2, tags)
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	// Posting goes on while the second child catches up and publishes.
	testkit.Eventually(t, 30*time.Second, "the second child to publish", func() bool { return len(readLines(t, out2)) >= 100 })
	for _, tag := range tags {
		srv.SetRate(tag, 0)
	}
	// An arrival in flight may land after this snapshot: it need not be published, and the check of what was
	// published below reads the ground truth again once the child stopped.
	truth := srv.GroundTruth()
	testkit.Eventually(t, 30*time.Second, "every media in the union of both runs", func() bool {
		seen := make(map[string]bool)
		for _, l := range run1 {
			seen[l[1]] = true
		}
		for _, l := range readLines(t, out2) {
			seen[l[1]] = true
		}
		for _, tr := range truth {
			if !seen[tr.MediaID] {
				return false
			}
		}
		return true
	})
	if err := child.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err != nil {
		t.Errorf("second child: %v", err)
	}
	run2 := readLines(t, out2)
	t.Logf("ground truth %d media; first run published %d before SIGKILL, second run %d", len(truth), len(run1), len(run2))

	known := make(map[string]bool, len(truth))
	for _, tr := range srv.GroundTruth() {
		known[tr.MediaID] = true
	}
	in2 := make(map[string]bool)
	for _, l := range run2 {
		if in2[l[1]] {
			t.Errorf("media %s published twice by the second run", l[1])
		}
		in2[l[1]] = true
	}
	// Per tag, the media both runs published must be a suffix of the first run's sequence: the batch in flight.
	perTag := make(map[string][]string)
	once := make(map[string]bool)
	for _, l := range run1 {
		if once[l[1]] {
			t.Errorf("media %s published twice by the first run", l[1])
		}
		once[l[1]] = true
		perTag[l[0]] = append(perTag[l[0]], l[1])
	}
	repeats := 0
	for tag, ids := range perTag {
		suffix, tagRepeats := true, 0
		for i := len(ids) - 1; i >= 0; i-- {
			if in2[ids[i]] {
				repeats++
				tagRepeats++
				if !suffix {
					t.Errorf("tag %s: media %s repeated after restart but a later one was not: not the crash window", tag, ids[i])
				}
			} else {
				suffix = false
			}
		}
		// One batch is at most CatchUpPages+1 pages of the child's PageSize.
		if tagRepeats > 6*10 {
			t.Errorf("tag %s: %d media repeated after restart, more than one batch", tag, tagRepeats)
		}
	}
	for id := range once {
		if !known[id] {
			t.Errorf("media %s published but not in the ground truth", id)
		}
	}
	t.Logf("%d media repeated after the restart (the crash window)", repeats)
}
