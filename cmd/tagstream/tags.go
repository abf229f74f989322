package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tagstream/tagstream/group"
	"github.com/tagstream/tagstream/internal/config"
	"github.com/tagstream/tagstream/internal/pipeline"
	"github.com/tagstream/tagstream/schema"
)

const tagsHelp = `
Read or change the set of tags of a group of tagstream instances (run --group), in the group's JetStream KV
bucket, without joining the group. The running members pick a change up within about a second, without a restart.

  add TAG...     add tags to the set (creating the group when it does not exist); prints each tag added
  remove TAG...  take tags out of the set; their members stop polling them; each cursor is kept for the
                 members' group-retention, so adding the tag again resumes without a gap; prints each tag removed
  list           print the set, sorted, one tag per line (--json: a JSON array)

Exit status: 0 done, 1 the change failed (the group does not exist, ...), 2 bad usage, a bad setting or an
invalid tag, 3 the group's NATS servers could not be reached.`

// tagsOps are the operations of tagstream tags.
var tagsOps = []string{"add", "remove", "list"}

func runTags(c *cli, args []string) int {
	fs := c.newFlagSet("tags", "add|remove|list --group NAME [--nats-url URLS] [flags] [TAG...]", tagsHelp)
	loader := config.NewLoader(fs, config.GroupCluster, config.Needs{}, config.Defaults())
	asJSON := fs.Bool("json", false, "list: print a JSON array")
	op, tags, code, stop := c.parseTagsArgs(fs, args)
	if stop {
		return code
	}
	cfg, err := loader.Load(c.environ)
	if err != nil {
		return c.loadFailure(loader, err)
	}
	switch {
	case cfg.Group == "":
		return c.configFailure(&config.Error{Key: "group", Origin: "default", Problem: "tags needs the group's name (--group NAME)"})
	case op != "list" && len(tags) == 0:
		fmt.Fprintf(c.stderr, "tagstream tags %s: name at least one tag (see tagstream tags --help)\n", op)
		return exitUsage
	case op == "list" && len(tags) > 0:
		fmt.Fprintf(c.stderr, "tagstream tags list: unexpected argument %q (see tagstream tags --help)\n", tags[0])
		return exitUsage
	case op != "list" && *asJSON:
		fmt.Fprintf(c.stderr, "tagstream tags %s: --json is for list only\n", op)
		return exitUsage
	}
	for _, t := range tags {
		if err := schema.ValidateTag(t); err != nil {
			fmt.Fprintf(c.stderr, "tagstream tags %s: %v\n", op, err)
			return exitUsage
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout+20*time.Second)
	defer cancel()
	logger := newLogger(io.Discard, "text", "error")
	g, err := pipeline.OpenGroupTags(ctx, cfg, logger)
	if err != nil {
		return c.tagsFailure(cfg, err)
	}
	defer g.Close()
	switch op {
	case "list":
		set, err := g.List(ctx)
		if err != nil {
			return c.tagsFailure(cfg, err)
		}
		if *asJSON {
			if set == nil {
				set = []string{}
			}
			b, _ := json.Marshal(set)
			fmt.Fprintf(c.stdout, "%s\n", b)
			return exitOK
		}
		for _, t := range set {
			fmt.Fprintln(c.stdout, t)
		}
	case "add":
		added, err := g.Add(ctx, tags...)
		if err != nil {
			return c.tagsFailure(cfg, err)
		}
		report(c.stdout, tags, added, "added", "already in the set")
	case "remove":
		removed, err := g.Remove(ctx, tags...)
		if err != nil {
			return c.tagsFailure(cfg, err)
		}
		report(c.stdout, tags, removed, "removed", "not in the set")
	}
	return exitOK
}

// parseTagsArgs reads the operation (the first argument), then flags and tags in any order. It returns (exit
// status, true) when the command must stop (help, a bad flag or operation).
func (c *cli) parseTagsArgs(fs *flag.FlagSet, args []string) (op string, tags []string, code int, stop bool) {
	if helpRequested(args) {
		fs.SetOutput(c.stdout)
		fs.Usage()
		return "", nil, exitOK, true
	}
	fs.SetOutput(io.Discard)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(c.stderr, "tagstream tags: name the operation: %s (see tagstream tags --help)\n", strings.Join(tagsOps, ", "))
		return "", nil, exitUsage, true
	}
	op, rest := args[0], args[1:]
	known := false
	for _, o := range tagsOps {
		known = known || o == op
	}
	if !known {
		fmt.Fprintf(c.stderr, "tagstream tags: unknown operation %q: %s (see tagstream tags --help)\n", op, strings.Join(tagsOps, ", "))
		return "", nil, exitUsage, true
	}
	for {
		if err := fs.Parse(rest); err != nil {
			fmt.Fprintf(c.stderr, "tagstream tags %s: %v (see tagstream tags --help)\n", op, err)
			return "", nil, exitUsage, true
		}
		if fs.NArg() == 0 {
			return op, tags, 0, false
		}
		tags = append(tags, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

// report prints one line per tag given: verb for those in changed, else what it means that nothing changed.
func report(w io.Writer, given, changed []string, verb, unchanged string) {
	seen := map[string]bool{}
	for _, t := range given {
		if seen[t] {
			continue
		}
		seen[t] = true
		if contains(changed, t) {
			fmt.Fprintf(w, "%s %s\n", verb, t)
		} else {
			fmt.Fprintf(w, "%s: %s\n", unchanged, t)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// tagsFailure prints why the group could not be read or changed: exit 3 when its servers could not be reached,
// 2 for an invalid tag, 1 otherwise.
func (c *cli) tagsFailure(cfg *config.Config, err error) int {
	msg := cfg.Redactor().String(err.Error())
	switch {
	case pipeline.IsUnreachable(err):
		fmt.Fprintf(c.stderr, "tagstream tags: cannot reach the group's NATS servers (nats-url %s): %s\n",
			cfg.Redactor().String(cfg.NATSURL), msg)
		return exitUnreachable
	case errors.Is(err, group.ErrInvalidTag):
		fmt.Fprintf(c.stderr, "tagstream tags: %s\n", msg)
		return exitUsage
	case errors.Is(err, group.ErrNoGroup):
		fmt.Fprintf(c.stderr, "tagstream tags: group %s does not exist: no tag was ever added to it (tagstream tags add --group %s TAG)\n",
			cfg.Group, cfg.Group)
		return exitFailure
	}
	fmt.Fprintf(c.stderr, "tagstream tags: %s\n", msg)
	return exitFailure
}
