package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionListsTheEmbeddedModules(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.0",
		Main:      debug.Module{Path: "github.com/tagstream/tagstream", Version: "v1.2.3"},
		Deps: []*debug.Module{
			{Path: "github.com/nats-io/nats.go", Version: "v1.55.0"},
			{Path: "github.com/segmentio/kafka-go", Version: "v0.4.51", Replace: &debug.Module{Path: "../kafka-go", Version: "(devel)"}},
		},
		Settings: []debug.BuildSetting{{Key: "-race", Value: "true"}, {Key: "-ldflags", Value: "-X secret"}},
	}
	var out bytes.Buffer
	writeVersion(&out, bi)
	for _, w := range []string{"tagstream v1.2.3 (go", "go\tgo1.26.0\n", "mod\tgithub.com/tagstream/tagstream\tv1.2.3\n",
		"dep\tgithub.com/nats-io/nats.go\tv1.55.0\n", "dep\tgithub.com/segmentio/kafka-go\tv0.4.51\t=> ../kafka-go (devel)\n", "build\t-race=true\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("version output lacks %q:\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), "ldflags") {
		t.Errorf("version prints the link flags:\n%s", out.String())
	}
}
