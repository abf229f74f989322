package testkit

import (
	"encoding/json"
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
