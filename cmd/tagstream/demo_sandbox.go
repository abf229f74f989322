package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/tagstream/tagstream/internal/config"
)

// sandboxMarker marks a directory that demo --keep-running made, so that it may empty it again; any other
// non-empty directory is refused.
const sandboxMarker = ".tagstream-sandbox"

// sandboxConfig is the file demo --keep-running writes into its directory: everything run, check, tail and status
// need to use the simulator and the NATS server it keeps up.
const sandboxConfig = "tagstream.yaml"

// defaultSandboxDir is where --keep-running keeps its files without --dir: $XDG_STATE_HOME/tagstream/sandbox,
// else ~/.local/state/tagstream/sandbox, else ./tagstream-sandbox.
func defaultSandboxDir(environ []string) string {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	switch {
	case filepath.IsAbs(env["XDG_STATE_HOME"]):
		return filepath.Join(env["XDG_STATE_HOME"], "tagstream", "sandbox")
	case env["HOME"] != "":
		return filepath.Join(env["HOME"], ".local", "state", "tagstream", "sandbox")
	}
	return "tagstream-sandbox"
}

// prepareSandbox makes dir an empty sandbox directory: it creates it, or empties one an earlier --keep-running
// made (the simulator is new, so old cursors and streams would only confuse), and refuses any other non-empty
// directory.
func prepareSandbox(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return &config.Error{Key: "dir", Origin: "--dir", Problem: err.Error()}
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, sandboxMarker)); err != nil {
			return &config.Error{Key: "dir", Origin: "--dir", Problem: fmt.Sprintf("%s is not empty and not a sandbox an earlier demo --keep-running made; name a new or empty directory", dir)}
		}
		if err := os.RemoveAll(dir); err != nil {
			return &config.Error{Key: "dir", Origin: "--dir", Problem: err.Error()}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &config.Error{Key: "dir", Origin: "--dir", Problem: err.Error()}
	}
	return os.WriteFile(filepath.Join(dir, sandboxMarker), []byte("made by tagstream demo --keep-running; emptied by the next one\n"), 0o600)
}

// serveSandbox keeps the simulator (its tags posting again, bursts included, no faults) and the NATS server up
// after the demo, writes the files that point tagstream at them, prints how to use them, and waits for Ctrl-C
// or SIGTERM.
func (d *demo) serveSandbox(tokens []string) error {
	dir := d.o.dir
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	tokensFile := filepath.Join(abs, "tokens")
	if err := os.WriteFile(tokensFile, []byte("# the simulator's tokens (written by tagstream demo --keep-running)\n"+strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	metrics, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	var tags []string
	for _, t := range demoTags {
		tags = append(tags, t.name)
	}
	body := fmt.Sprintf(`# Written by tagstream demo --keep-running: the simulator and the NATS server it keeps up until Ctrl-C.
# tagstream check|run|tail|status --config %[1]s
api-url: %[2]s
ca-file: %[3]s
tokens-file: %[4]s
tags: [%[5]s]
requests-per-hour: %[6]d
sink: jetstream
nats-url: %[7]s
state-dir: %[8]s
metrics-addr: %[9]s
`, filepath.Join(dir, sandboxConfig), d.sim.URL(), d.sim.CAFile(), tokensFile, strings.Join(tags, ", "), d.o.requestsPerHour,
		d.cfg.NATSURL, filepath.Join(abs, "state"), metrics)
	tmp := filepath.Join(abs, sandboxConfig+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return err
	}
	for _, t := range demoTags {
		d.sim.SetRate(t.name, t.rate*d.o.rateScale)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bursts := make(chan struct{})
	go func() {
		defer close(bursts)
		d.burstLoop(ctx, d.o.seed+1)
	}()
	// The file appears whole, once everything it names is up: a script may wait for it.
	if err := os.Rename(tmp, filepath.Join(abs, sandboxConfig)); err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, sandboxConfig)
	w := d.c.stdout
	fmt.Fprintf(w, "\nThe simulator and the NATS server keep running until Ctrl-C, for your own commands:\n")
	fmt.Fprintf(w, "  simulator  %s  (CA file %s, %d tokens in %s; the tags post again)\n", d.sim.URL(), d.sim.CAFile(), len(tokens), tokensFile)
	fmt.Fprintf(w, "  nats       %s  (JetStream)\n", d.cfg.NATSURL)
	fmt.Fprintf(w, "  settings   %s  (api-url, ca-file, tokens-file, tags, nats-url, state-dir, metrics-addr %s)\n", cfgPath, metrics)
	fmt.Fprintf(w, "In another terminal, with tagstream built (go build -o tagstream ./cmd/tagstream):\n")
	for _, cmd := range []string{"check", "run", "status", "tail"} {
		extra := ""
		if cmd == "tail" {
			extra = " --tag sunset"
		}
		fmt.Fprintf(w, "  ./tagstream %-6s --config %s%s\n", cmd, cfgPath, extra)
	}
	<-ctx.Done()
	<-bursts
	fmt.Fprintf(w, "sandbox stopped; %s stays (the next --keep-running empties it)\n", dir)
	return nil
}

// freeLoopbackAddr returns a loopback address that was free a moment ago, for the sandbox's metrics-addr.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
