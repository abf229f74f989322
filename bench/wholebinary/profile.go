package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// profileConfig is -cpuprofile: a CPU profile of tagstream taken through its --pprof-addr (which the harness then
// passes) over a window of the run. The binary must have --pprof-addr (tagstream run has it since the scale work of
// issue #11); the profile is read with `go tool pprof BINARY FILE`.
type profileConfig struct {
	File   string        // where the profile is written ("" = no profile)
	At     time.Duration // when the window starts, after tagstream's start (0: at the end of the warm-up)
	Window time.Duration // how long it lasts (0: 60 s)
}

// pprofArgs returns the tagstream flag serving pprof on a free loopback port, and the port's base URL.
func pprofArgs() (args []string, base string, err error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return []string{"--pprof-addr", addr}, "http://" + addr, nil
}

// takeProfile waits until start+At, then writes a CPU profile of Window seconds from base to File.
func takeProfile(ctx context.Context, pc profileConfig, base string, start time.Time, logf func(string, ...any)) error {
	at, window := pc.At, pc.Window
	if at == 0 {
		at = warmup
	}
	if window == 0 {
		window = time.Minute
	}
	if err := sleepUntil(ctx, start.Add(at)); err != nil {
		return err
	}
	secs := int(window.Round(time.Second) / time.Second)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: window + 30*time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w (does the binary have --pprof-addr?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: HTTP %d (does the binary have --pprof-addr?)", resp.StatusCode)
	}
	f, err := os.Create(pc.File)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	logf("cpu profile of tagstream from %s to %s written to %s", at, at+window, pc.File)
	return nil
}
