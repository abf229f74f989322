// Package schema holds tagstream's two data contracts.
//
// The upstream side (upstream.go) reads every envelope the Instagram v1 API
// sent between 2010 and 2017: DecodePage classifies one HTTP answer into a
// *Page or a typed error (*APIError, *NonJSONError, ErrMalformed). Cursors are
// opaque strings and ids above 2^53 stay exact: numbers are never read through
// float64.
//
// The downstream side (event.go, encode.go) is one versioned, normalized
// CloudEvents 1.0 event per media (type MediaEventType, data MediaData) plus a
// gap marker (GapEventType, GapData), described by the embedded JSON Schema
// media-event.v1.schema.json (JSONSchema). Normalize builds an event from a
// Media; AppendJSON encodes it without reflection.
//
// All functions are safe for concurrent use.
package schema
