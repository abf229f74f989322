package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the harness started. Its output goes to a log file; it is killed with the harness
// (Pdeathsig) and by stop or kill on every exit path.
type child struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	log     *os.File
}

// startChild starts cmd with its output appended to logPath; extraOut, when not nil, also receives stdout.
func startChild(name string, cmd *exec.Cmd, logPath string, extraOut io.Writer) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	fmt.Fprintf(f, "\n===== wholebinary: %s started at %s =====\n", name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd.Stderr = f
	cmd.Stdout = f
	if extraOut != nil {
		cmd.Stdout = io.MultiWriter(f, extraOut)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), log: f}
	go func() {
		c.waitErr = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// running reports whether the process has not exited yet.
func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// pid is the process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// stop sends SIGTERM and waits up to timeout, then kills. It returns an error when the process had to be killed
// or exited with a non-zero status.
func (c *child) stop(timeout time.Duration) error {
	if c.running() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM: killed", c.name, timeout)
	}
	if c.waitErr != nil {
		return fmt.Errorf("%s: %w", c.name, c.waitErr)
	}
	return nil
}

// kill ends the process with SIGKILL and waits for it.
func (c *child) kill() {
	if c.running() {
		_ = c.cmd.Process.Kill()
	}
	<-c.done
}

// usage is the CPU time and peak resident memory of a process.
type usage struct {
	CPU     time.Duration
	MaxRSS  int64 // bytes
	Samples int   // for a sum over several processes: how many
}

// exitedUsage is the rusage of an exited child (its whole life).
func (c *child) exitedUsage() (usage, error) {
	<-c.done
	ru, ok := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok || ru == nil {
		return usage{}, errors.New("no rusage")
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return usage{CPU: cpu, MaxRSS: ru.Maxrss * 1024, Samples: 1}, nil
}

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ, 100 on every Linux Go supports).
const clockTick = 10 * time.Millisecond

// procUsage reads the CPU time (utime+stime) and peak resident set (VmHWM) of a running process from /proc.
func procUsage(pid int) (usage, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return usage{}, err
	}
	cpu, err := parseProcStatCPU(string(b))
	if err != nil {
		return usage{}, err
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return usage{}, err
	}
	hwm, err := parseProcStatusKB(string(st), "VmHWM")
	if err != nil {
		return usage{}, err
	}
	return usage{CPU: cpu, MaxRSS: hwm, Samples: 1}, nil
}

// parseProcStatCPU returns utime+stime of a /proc/<pid>/stat line. The command name (field 2) is in parentheses
// and may hold spaces, so fields are counted after the last ')'.
func parseProcStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no ')'")
	}
	f := strings.Fields(stat[i+1:])
	// After ")": state is field 3, utime field 14, stime field 15 of the whole line.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// parseProcStatusKB returns the value of a "Key:  123 kB" line of /proc/<pid>/status in bytes.
func parseProcStatusKB(status, key string) (int64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status %s: %w", key, err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("proc status: no %s", key)
}

// selfCPU is the CPU time of the harness process so far (every thread).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage returns the first three fields of /proc/loadavg ("1.02 0.88 0.71"), or "?" when unreadable.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitUntil calls cond every interval until it returns true, an error, or ctx ends; it is the one wait-on-a-
// condition loop of the harness.
func waitUntil(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
