package schema

import _ "embed"

// JSONSchemaID is the $id of the event JSON Schema.
const JSONSchemaID = "https://github.com/tagstream/tagstream/schema/media-event.v1.schema.json"

//go:embed media-event.v1.schema.json
var jsonSchema []byte

// JSONSchema returns the JSON Schema (draft 2020-12) of the events this
// package produces, version 1. The caller gets its own copy.
func JSONSchema() []byte { return append([]byte(nil), jsonSchema...) }
