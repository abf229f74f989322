package main

import (
	"strings"
	"testing"

	"github.com/tagstream/tagstream/internal/testkit"
)

func TestTagsChangesAGroupsSet(t *testing.T) {
	t.Parallel()
	ns := testkit.StartNATS(t)
	url := ns.ClientURL()
	tags := func(args ...string) result {
		t.Helper()
		return run(t, nil, append([]string{"tags"}, args...)...)
	}
	steps := []struct {
		name     string
		args     []string
		wantCode int
		stdout   string // the whole output, when wantCode is 0
		stderr   string // a part of the error output, otherwise
	}{
		{"list of a group that does not exist fails", []string{"list", "--group", "g", "--nats-url", url}, 1, "", "group g does not exist"},
		{"add creates the group and prints each tag added", []string{"add", "--group", "g", "--nats-url", url, "sunset", "coffee"}, 0,
			"added sunset\nadded coffee\n", ""},
		{"flags may follow the tags", []string{"add", "tea", "coffee", "--group", "g", "--nats-url", url}, 0,
			"added tea\nalready in the set: coffee\n", ""},
		{"list prints the set sorted, one per line", []string{"list", "--group", "g", "--nats-url", url}, 0, "coffee\nsunset\ntea\n", ""},
		{"remove prints each tag removed", []string{"remove", "--group", "g", "--nats-url", url, "tea", "matcha"}, 0,
			"removed tea\nnot in the set: matcha\n", ""},
		{"list --json prints a JSON array", []string{"list", "--json", "--group", "g", "--nats-url", url}, 0, `["coffee","sunset"]` + "\n", ""},
		{"list --json of an empty set prints an empty array", []string{"list", "--json", "--group", "g", "--nats-url", url}, 0, "", ""},
		{"an invalid tag exits 2 with the reason", []string{"add", "--group", "g", "--nats-url", url, "no spaces"}, 2, "", "tag"},
		{"without a group it exits 2 naming group", []string{"list", "--nats-url", url}, 2, "", "config: group"},
		{"an unknown operation exits 2", []string{"rename", "--group", "g"}, 2, "", `unknown operation "rename"`},
		{"add without tags exits 2", []string{"add", "--group", "g", "--nats-url", url}, 2, "", "name at least one tag"},
		{"a group name with a dot exits 2 naming group", []string{"list", "--group", "a.b", "--nats-url", url}, 2, "", "config: group"},
		{"servers nobody runs exit 3", []string{"list", "--group", "g", "--nats-url", "nats://" + testkit.FreeAddr(t), "--connect-timeout", "500ms"}, 3,
			"", "cannot reach the group's NATS servers"},
	}
	for _, s := range steps {
		if s.name == "list --json of an empty set prints an empty array" {
			if r := tags("remove", "--group", "g", "--nats-url", url, "coffee", "sunset"); r.code != 0 {
				t.Fatalf("remove: exit %d: %s", r.code, r.stderr)
			}
			s.stdout = "[]\n"
		}
		r := tags(s.args...)
		if r.code != s.wantCode {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", s.name, r.code, s.wantCode, r.stdout, r.stderr)
		}
		if s.wantCode == 0 && r.stdout != s.stdout {
			t.Errorf("%s: stdout %q, want %q", s.name, r.stdout, s.stdout)
		}
		if s.wantCode != 0 && !strings.Contains(r.stderr, s.stderr) {
			t.Errorf("%s: stderr %q, want it to contain %q", s.name, r.stderr, s.stderr)
		}
	}
}

func TestTagsHelpExplainsTheOperations(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "tags", "--help")
	for _, w := range []string{"add TAG...", "remove TAG...", "list", "--json", "--group", "--nats-url", "Exit status"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("tags --help lacks %q:\n%s", w, r.stdout)
		}
	}
	if r.code != 0 {
		t.Errorf("exit %d", r.code)
	}
}
