package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestSIGHUPReloadsTheTagsOfTheConfigFile(t *testing.T) {
	t.Parallel()
	sim := startSim(t, "sunset", "coffee", "tea")
	tokens := testkit.WriteTokens(t, secretTokens[0])
	addr := testkit.FreeAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "tagstream.yaml")
	write := func(tags, extra string) {
		t.Helper()
		body := "api-url: " + sim.URL() + "\nca-file: " + sim.CAFile() + "\ntokens-file: " + tokens + "\n" +
			"tags: " + tags + "\nsink: file\noutput: " + filepath.Join(dir, "events.ndjson") + "\n" +
			"checkpoint-store: memory\nmetrics-addr: " + addr + "\nmax-interval: 1s\n" + extra
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	polled := func() []string {
		resp, err := http.Get("http://" + addr + "/status")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var rep struct {
			Tags []struct {
				Tag string `json:"tag"`
			} `json:"tags"`
		}
		if json.NewDecoder(resp.Body).Decode(&rep) != nil {
			return nil
		}
		var out []string
		for _, l := range rep.Tags {
			out = append(out, l.Tag)
		}
		slices.Sort(out)
		return out
	}

	write("[sunset]", "min-interval: 200ms\n")
	var out, logs testkit.SyncBuffer
	stop := make(chan struct{})
	hup := make(chan os.Signal, 1)
	c := &cli{stdout: &out, stderr: &logs, stop: stop, hup: hup}
	done := make(chan int, 1)
	go func() { done <- c.main([]string{"run", "--config", path}) }()
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		testkit.Receive(t, done, 30*time.Second, "run to stop")
		for _, tok := range secretTokens {
			if strings.Contains(logs.String(), tok) {
				t.Errorf("the log contains a token")
			}
		}
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	testkit.Eventually(t, 30*time.Second, "the tag of the file", func() bool { return slices.Equal(polled(), []string{"sunset"}) })

	steps := []struct {
		name  string
		tags  string
		extra string
		want  []string
		log   string
	}{
		{"added tags are polled and another changed key needs a restart", "[sunset, coffee, tea]", "min-interval: 300ms\n",
			[]string{"coffee", "sunset", "tea"}, `keys=min-interval`},
		{"removed tags stop", "[tea]", "min-interval: 200ms\n", []string{"tea"}, "added=0 removed=2"},
		{"an invalid file is logged and the running tags stay", `["no spaces"]`, "", []string{"tea"}, "the config file cannot be used"},
	}
	for _, s := range steps {
		write(s.tags, s.extra)
		hup <- syscall.SIGHUP
		testkit.Eventually(t, 30*time.Second, s.name, func() bool {
			return slices.Equal(polled(), s.want) && strings.Contains(logs.String(), s.log)
		})
	}
	close(stop)
	if code := testkit.Receive(t, done, 30*time.Second, "run to stop"); code != 0 {
		t.Errorf("run exited %d after a stop, want 0", code)
	}
	done <- 0
}
