package testkit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tagstream/tagstream/schema"
)

// MediaEvents builds n media events of tag with media ids "<from+i>_1", created a second apart from
// 2026-01-01 00:00 UTC plus from seconds, each with a caption of captionBytes bytes ("xxx…") and the cursor
// "<1000+from+i>". Equal arguments give equal events, ids included.
func MediaEvents(tag string, from, n, captionBytes int) []*schema.Event {
	out := make([]*schema.Event, n)
	for i := range out {
		id := fmt.Sprintf("%d_1", from+i)
		created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(from+i) * time.Second)
		out[i] = &schema.Event{
			SpecVersion: "1.0", ID: schema.EventID(tag, id), Source: schema.DefaultSource,
			Type: schema.MediaEventType, Subject: tag, Time: created, DataContentType: "application/json",
			Data: &schema.MediaData{MediaID: id, Type: "image", Tag: tag, CreatedAt: created, FetchedAt: created,
				Caption: strings.Repeat("x", captionBytes), Link: "https://instagram.com/p/" + id + "/",
				Cursor: fmt.Sprintf("%d", 1000+from+i)},
		}
	}
	return out
}

// FileMediaIDs returns the media ids of the media events in an NDJSON events file (what the file sink writes),
// in file order; gap markers and empty lines are passed over, and a file that does not exist (yet) holds none.
// A line that is not an event fails the test. The last line counts only once its newline was written: a reader
// racing the sink may see a half-written line, which is read again on the next call, not taken for garbage.
func FileMediaIDs(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for line := range bytes.Lines(b) {
		if !bytes.HasSuffix(line, []byte("\n")) {
			break // still being written
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		ev, err := schema.UnmarshalEvent(line)
		if err != nil {
			t.Fatalf("bad line in %s: %q: %v", path, line, err)
		}
		if ev.Data != nil {
			ids = append(ids, ev.Data.MediaID)
		}
	}
	return ids
}

// Recording is one recorded answer of an ExVCR cassette: the status, headers and body as the server sent them.
type Recording struct {
	Status  int               `json:"status_code"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
}

// Cassette returns the recorded answers of the ExVCR cassette at path (a JSON array of {request, response}),
// in order. A file that cannot be read, is not a cassette or holds no recording fails the test.
func Cassette(t testing.TB, path string) []Recording {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read cassette: %v", err)
	}
	var recs []struct {
		Response Recording `json:"response"`
	}
	if err := json.Unmarshal(raw, &recs); err != nil || len(recs) == 0 {
		t.Fatalf("cassette %s: not a cassette or empty: %v", path, err)
	}
	out := make([]Recording, len(recs))
	for i, r := range recs {
		out[i] = r.Response
	}
	return out
}
