// Command tagstream polls the Instagram v1 tag API with a pool of rate-limited tokens and publishes one
// CloudEvents event per new media to NATS JetStream, core NATS, Kafka, a file or stdout.
//
// Usage:
//
//	tagstream demo [flags]     the whole pipeline against a built-in simulator and an embedded NATS server
//	tagstream run [flags]      poll the configured tags and publish until SIGINT or SIGTERM
//	tagstream tail [flags]     print the events a broker holds
//	tagstream check [flags]    validate the configuration and reach the API and the broker, publishing nothing
//	tagstream status [flags]   show what a running tagstream is doing, from its /status
//	tagstream tags add|remove|list --group NAME [flags] [TAG...]
//	                           read or change a group's tags while its instances run
//	tagstream version          print the version
//
// Every subcommand takes --help. Exit status: 0 success, 1 a runtime failure, 2 a usage or configuration
// problem, 3 what the command talks to could not be reached (check, tail, demo: a broker; status: the running
// instance). Settings come from a YAML file (--config), TAGSTREAM_* environment variables and flags; see
// docs/configuration.md and docs/operations.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/tagstream/tagstream/internal/config"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitUnreachable = 3 // check, tail, demo: a broker could not be reached (check: and nothing else failed); status: the instance
)

// cli carries the process environment to a subcommand, so that tests can run commands in-process.
type cli struct {
	stdout  io.Writer
	stderr  io.Writer
	environ []string
	// stop, when set, ends run as SIGTERM does; hup, when set, stands for SIGHUP (tests run the command
	// in-process, where a real signal would reach every command of the test binary).
	stop <-chan struct{}
	hup  <-chan os.Signal
}

type command struct {
	name    string
	summary string
	run     func(c *cli, args []string) int
}

func commands() []command {
	return []command{
		{"demo", "run the whole pipeline against a built-in simulator and an embedded NATS server, with a live view", runDemo},
		{"run", "poll the configured tags and publish one event per new media until SIGINT/SIGTERM", runRun},
		{"tail", "consume and print events from JetStream, NATS or Kafka", runTail},
		{"check", "validate the configuration and reach the API and the broker without publishing", runCheck},
		{"status", "show what a running tagstream is doing: per tag cursor, polls, lag, catch-up; per token budget", runStatus},
		{"tags", "read or change the tags of a group of instances (add, remove, list) while they run", runTags},
		{"version", "print the version", runVersion},
	}
}

func main() {
	c := &cli{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()}
	os.Exit(c.main(os.Args[1:]))
}

func (c *cli) main(args []string) int {
	if len(args) == 0 {
		c.usage(c.stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 && name == "help" {
			return c.main([]string{args[1], "--help"})
		}
		c.usage(c.stdout)
		return exitOK
	case "-version", "--version":
		return runVersion(c, nil)
	}
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd.run(c, args[1:])
		}
	}
	fmt.Fprintf(c.stderr, "tagstream: unknown command %q\n\n", name)
	c.usage(c.stderr)
	return exitUsage
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, "tagstream polls Instagram v1 tags and publishes one CloudEvents event per new media.\n\nUsage:\n  tagstream <command> [flags]\n\nCommands:\n")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(w, "\nRun 'tagstream <command> --help' for the flags of a command.\n"+
		"Settings also come from a YAML file (--config) and TAGSTREAM_* environment variables; tokens only from\n"+
		"--tokens-file or TAGSTREAM_TOKENS. Exit status: 0 ok, 1 failure, 2 bad usage or configuration, 3 what the\n"+
		"command talks to could not be reached (check, tail, demo: a broker; status: the instance; run waits for it).\n")
}

// newFlagSet returns a flag set for a subcommand whose usage text names the command and its purpose.
func (c *cli) newFlagSet(name, synopsis, help string) *flag.FlagSet {
	fs := flag.NewFlagSet("tagstream "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "Usage: tagstream %s %s\n\n%s\n\nFlags:\n", name, synopsis, strings.TrimSpace(help))
		printFlags(out, fs)
	}
	return fs
}

// printFlags lists the flags as "--name <kind>" with their usage and default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		kind, usage := flag.UnquoteUsage(f)
		if k, ok := config.FlagKind(f.Value); ok {
			kind = k
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			kind = ""
		}
		if kind != "" {
			kind = " <" + kind + ">"
		}
		def := ""
		if _, ours := config.FlagKind(f.Value); !ours && f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "0s" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  --%s%s\n      %s%s\n", f.Name, kind, usage, def)
	})
}

// parseFlags parses args; it returns (exit status, true) when the command must stop (help or a bad flag).
// Help goes to stdout; a bad flag is reported on one line.
func (c *cli) parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if helpRequested(args) {
		fs.SetOutput(c.stdout)
	} else {
		fs.SetOutput(io.Discard)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		fmt.Fprintf(c.stderr, "%s: %v (see %s --help)\n", fs.Name(), err, fs.Name())
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "%s: unexpected argument %q: flags only (see %s --help)\n", fs.Name(), fs.Arg(0), fs.Name())
		return exitUsage, true
	}
	return 0, false
}

// helpRequested reports whether -h/--help is among args, so help goes to stdout with status 0.
func helpRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			return true
		}
	}
	return false
}

// loadFailure prints the warnings of a failed load (a misspelt variable is often the cause), then the error on
// one line, and returns exit status 2.
func (c *cli) loadFailure(l *config.Loader, err error) int {
	for _, w := range l.Warnings() {
		fmt.Fprintf(c.stderr, "tagstream: warning: %s\n", w)
	}
	return c.configFailure(err)
}

// configFailure prints a configuration error on one line and returns exit status 2.
func (c *cli) configFailure(err error) int {
	fmt.Fprintf(c.stderr, "tagstream: %v\n", err)
	return exitUsage
}

// failure prints err (a configuration problem exits 2, anything else 1) with the secrets of cfg redacted.
func (c *cli) failure(cfg *config.Config, err error) int {
	if isConfigError(err) {
		return c.configFailure(err)
	}
	fmt.Fprintf(c.stderr, "tagstream: %s\n", cfg.Redactor().String(err.Error()))
	return exitFailure
}

// isConfigError reports whether err is a configuration problem (exit status 2).
func isConfigError(err error) bool {
	return errors.Is(err, config.ErrInvalid)
}
