package schema_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tagstream/tagstream/schema"
)

// TestJSONSchemaNamesEveryGoField keeps media-event.v1.schema.json in step with
// the Go types: every JSON member of a data type is a property of its schema
// definition, and every property is a Go field.
func TestJSONSchemaNamesEveryGoField(t *testing.T) {
	var doc struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.JSONSchema(), &doc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		def      string
		goType   any
		extra    []string // members AppendJSON writes that have no json tag
		optional []string // members that may be absent
	}{
		{name: "media data", def: "media", goType: schema.MediaData{}, extra: []string{"raw"}, optional: []string{"raw"}},
		{name: "gap data", def: "gap", goType: schema.GapData{}},
		{name: "user", def: "user", goType: schema.User{}},
		{name: "location", def: "location", goType: schema.Location{}},
		{name: "rendition", def: "rendition", goType: schema.Rendition{}},
		{name: "renditions", def: "renditions", goType: schema.Renditions{}, optional: []string{"thumbnail", "low_resolution", "standard_resolution", "low_bandwidth", "high_resolution"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def, ok := doc.Defs[tt.def]
			if !ok {
				t.Fatalf("the schema has no $defs/%s", tt.def)
			}
			fields := append(jsonNames(reflect.TypeOf(tt.goType)), tt.extra...)
			for _, f := range fields {
				if _, ok := def.Properties[f]; !ok {
					t.Errorf("Go member %q is missing from $defs/%s", f, tt.def)
				}
				if !slices.Contains(tt.optional, f) && !slices.Contains(def.Required, f) {
					t.Errorf("Go member %q is always written but not required in $defs/%s", f, tt.def)
				}
			}
			for p := range def.Properties {
				if !slices.Contains(fields, p) {
					t.Errorf("$defs/%s property %q has no Go field", tt.def, p)
				}
			}
		})
	}
	for _, attr := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"} {
		if _, ok := doc.Properties[attr]; !ok {
			t.Errorf("CloudEvents attribute %q is missing from the schema", attr)
		}
	}
}

func jsonNames(t reflect.Type) []string {
	var out []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || name == "" {
			continue
		}
		out = append(out, name)
	}
	return out
}
