package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrUnknownEventType is wrapped by UnmarshalEvent's error for an event whose
// type is neither MediaEventType nor GapEventType.
var ErrUnknownEventType = errors.New("schema: unknown event type")

// UnmarshalEvent reads one structured-mode event as AppendJSON writes it, for
// consumers and tests. It is not on the hot path and uses encoding/json. Errors
// wrap ErrMalformed (not JSON, wrong member types, missing data) or
// ErrUnknownEventType.
func UnmarshalEvent(b []byte) (*Event, error) {
	var w struct {
		SpecVersion     string          `json:"specversion"`
		ID              string          `json:"id"`
		Source          string          `json:"source"`
		Type            string          `json:"type"`
		Subject         string          `json:"subject"`
		Time            *time.Time      `json:"time"`
		DataContentType string          `json:"datacontenttype"`
		Data            json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%w: event: %v", ErrMalformed, err)
	}
	e := &Event{
		SpecVersion:     w.SpecVersion,
		ID:              w.ID,
		Source:          w.Source,
		Type:            w.Type,
		Subject:         w.Subject,
		DataContentType: w.DataContentType,
	}
	if w.Time != nil {
		e.Time = w.Time.UTC()
	}
	if len(w.Data) == 0 || string(w.Data) == "null" {
		return nil, fmt.Errorf("%w: event %s has no data", ErrMalformed, w.ID)
	}
	switch w.Type {
	case MediaEventType:
		var d struct {
			MediaData
			Raw json.RawMessage `json:"raw"`
		}
		if err := json.Unmarshal(w.Data, &d); err != nil {
			return nil, fmt.Errorf("%w: media event data: %v", ErrMalformed, err)
		}
		md := d.MediaData
		md.CreatedAt = utcOrZero(md.CreatedAt)
		md.FetchedAt = utcOrZero(md.FetchedAt)
		if len(d.Raw) > 0 && string(d.Raw) != "null" {
			md.Raw = []byte(d.Raw)
		}
		e.Data = &md
	case GapEventType:
		var g struct {
			GapData
			Missing *int `json:"missing"`
		}
		if err := json.Unmarshal(w.Data, &g); err != nil {
			return nil, fmt.Errorf("%w: gap event data: %v", ErrMalformed, err)
		}
		gd := g.GapData
		gd.Missing = -1
		if g.Missing != nil && *g.Missing >= 0 {
			gd.Missing = *g.Missing
		}
		gd.DetectedAt = utcOrZero(gd.DetectedAt)
		e.Gap = &gd
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, w.Type)
	}
	return e, nil
}

func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
