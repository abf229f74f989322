package schema_test

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tagstream/tagstream/schema"
)

// The workload of every benchmark here is the recorded 2015 tag page
// (elixtagram__tags_ts_media_recent__2015-09-29T2006: 10 media, 28 kB body).
// One op is one page: decode it, normalize its 10 media and encode 10 events.
// events/s and allocs/event are reported per event.

func benchPage(b *testing.B) []byte {
	b.Helper()
	return loadFixture(b, "elixtagram__tags_ts_media_recent__2015-09-29T2006.cassette.json").body
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPerEvent adds events/s (wall clock), events/cpu-s (per second of
// process CPU time, GC included: the per-core figure on a busy machine) and
// allocs/event to a benchmark whose ops each handle perOp events.
func reportPerEvent(b *testing.B, perOp int, start time.Time, cpuStart time.Duration, before *runtime.MemStats) {
	b.Helper()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpuStart
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	events := float64(b.N * perOp)
	b.ReportMetric(events/elapsed.Seconds(), "events/s")
	if cpu > 0 {
		b.ReportMetric(events/cpu.Seconds(), "events/cpu-s")
	}
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/events, "B/event")
}

// BenchmarkPipeline compares the package's hand-written decoder and encoder
// with the same work done by encoding/json (see bench/schema.md).
func BenchmarkPipeline(b *testing.B) {
	body := benchPage(b)
	b.Run("handwritten", func(b *testing.B) {
		buf := make([]byte, 0, 64<<10)
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.SetBytes(int64(len(body)))
		start, cpuStart := time.Now(), cpuTime()
		for range b.N {
			page, err := schema.DecodePage(200, "application/json", body)
			if err != nil {
				b.Fatal(err)
			}
			buf = buf[:0]
			for i := range page.Media {
				ev, err := schema.Normalize(&page.Media[i], schema.Sighting{Tag: "ts", Cursor: page.Pagination.MinTagID, FetchedAt: fetchedAt})
				if err != nil {
					b.Fatal(err)
				}
				buf = ev.AppendJSON(buf)
				buf = append(buf, '\n')
			}
		}
		reportPerEvent(b, 10, start, cpuStart, &before)
	})
	b.Run("encoding-json", func(b *testing.B) {
		var out bytes.Buffer
		enc := json.NewEncoder(&out)
		enc.SetEscapeHTML(false)
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.SetBytes(int64(len(body)))
		start, cpuStart := time.Now(), cpuTime()
		for range b.N {
			var page stdPage
			if err := json.Unmarshal(body, &page); err != nil {
				b.Fatal(err)
			}
			out.Reset()
			for i := range page.Data {
				if err := enc.Encode(page.Data[i].event("ts", string(page.Pagination.MinTagID), fetchedAt)); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportPerEvent(b, 10, start, cpuStart, &before)
	})
}

// BenchmarkStages splits the hand-written pipeline into its three stages.
func BenchmarkStages(b *testing.B) {
	body := benchPage(b)
	page, err := schema.DecodePage(200, "application/json", body)
	if err != nil {
		b.Fatal(err)
	}
	events := make([]*schema.Event, len(page.Media))
	for i := range page.Media {
		events[i], _ = schema.Normalize(&page.Media[i], schema.Sighting{Tag: "ts", FetchedAt: fetchedAt})
	}
	b.Run("decode-page", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for range b.N {
			if _, err := schema.DecodePage(200, "application/json", body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("normalize-10", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			for i := range page.Media {
				if _, err := schema.Normalize(&page.Media[i], schema.Sighting{Tag: "ts", FetchedAt: fetchedAt}); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("append-json-10", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64<<10)
		for range b.N {
			buf = buf[:0]
			for _, ev := range events {
				buf = ev.AppendJSON(buf)
			}
		}
	})
	b.Run("append-json-10-with-raw", func(b *testing.B) {
		withRaw := make([]*schema.Event, len(page.Media))
		for i := range page.Media {
			withRaw[i], _ = schema.Normalize(&page.Media[i], schema.Sighting{Tag: "ts", FetchedAt: fetchedAt, AttachRaw: true})
		}
		b.ReportAllocs()
		buf := make([]byte, 0, 128<<10)
		for range b.N {
			buf = buf[:0]
			for _, ev := range withRaw {
				buf = ev.AppendJSON(buf)
			}
		}
	})
}

// stdPage and friends are the encoding/json version of the same work, for the
// comparison only: the 2015 shape with flexible ids.
type stdPage struct {
	Meta       struct{ Code int } `json:"meta"`
	Data       []stdMedia         `json:"data"`
	Pagination struct {
		NextURL      string   `json:"next_url"`
		NextMaxTagID flexText `json:"next_max_tag_id"`
		MinTagID     flexText `json:"min_tag_id"`
	} `json:"pagination"`
}

// flexText reads a JSON string as itself and a number as its exact text.
type flexText string

func (f *flexText) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexText(s)
		return nil
	}
	if string(b) != "null" {
		*f = flexText(b)
	}
	return nil
}

type stdRendition struct {
	URL    string `json:"url"`
	Width  int64  `json:"width"`
	Height int64  `json:"height"`
}

type stdMedia struct {
	ID          flexText `json:"id"`
	Type        string   `json:"type"`
	Link        string   `json:"link"`
	CreatedTime flexText `json:"created_time"`
	Tags        []string `json:"tags"`
	Caption     *struct {
		Text string `json:"text"`
	} `json:"caption"`
	User     schema.User      `json:"user"`
	Location *schema.Location `json:"location"`
	Images   struct {
		Thumbnail          stdRendition `json:"thumbnail"`
		LowResolution      stdRendition `json:"low_resolution"`
		StandardResolution stdRendition `json:"standard_resolution"`
	} `json:"images"`
	Likes        struct{ Count int64 } `json:"likes"`
	Comments     struct{ Count int64 } `json:"comments"`
	Filter       string                `json:"filter"`
	UsersInPhoto []schema.UserInPhoto  `json:"users_in_photo"`
}

type stdEvent struct {
	SpecVersion     string            `json:"specversion"`
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	Type            string            `json:"type"`
	Subject         string            `json:"subject"`
	Time            time.Time         `json:"time"`
	DataContentType string            `json:"datacontenttype"`
	Data            *schema.MediaData `json:"data"`
}

func (m *stdMedia) event(tag, cursor string, fetched time.Time) *stdEvent {
	sec, _ := strconv.ParseInt(string(m.CreatedTime), 10, 64)
	created := time.Unix(sec, 0).UTC()
	d := &schema.MediaData{
		MediaID: string(m.ID), Link: m.Link, Type: m.Type, CreatedAt: created, Tag: tag, Cursor: cursor,
		Tags: m.Tags, User: m.User, Location: m.Location, Likes: m.Likes.Count, Comments: m.Comments.Count,
		Filter: m.Filter, UsersInPhoto: m.UsersInPhoto, FetchedAt: fetched,
		Images: schema.Renditions{
			Thumbnail:          schema.Rendition(m.Images.Thumbnail),
			LowResolution:      schema.Rendition(m.Images.LowResolution),
			StandardResolution: schema.Rendition(m.Images.StandardResolution),
		},
	}
	if m.Caption != nil {
		d.Caption = m.Caption.Text
	}
	return &stdEvent{SpecVersion: "1.0", ID: schema.EventID(tag, d.MediaID), Source: schema.DefaultSource, Type: schema.MediaEventType,
		Subject: tag, Time: created, DataContentType: "application/json", Data: d}
}
