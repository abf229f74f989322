package testkit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFileMediaIDsWaitsForTheLastLinesNewline(t *testing.T) {
	var lines []byte
	for _, ev := range MediaEvents("coffee", 0, 2, 10) {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(append(lines, b...), '\n')
	}
	path := filepath.Join(t.TempDir(), "events.ndjson")
	half := len(lines) - 20 // the second line cut, as a reader racing the sink sees it
	if err := os.WriteFile(path, lines[:half], 0o600); err != nil {
		t.Fatal(err)
	}
	if got := FileMediaIDs(t, path); !slices.Equal(got, []string{"0_1"}) {
		t.Fatalf("with the second line half written: got %v, want [0_1]", got)
	}
	if err := os.WriteFile(path, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := FileMediaIDs(t, path); !slices.Equal(got, []string{"0_1", "1_1"}) {
		t.Fatalf("with both lines written: got %v, want [0_1 1_1]", got)
	}
}
