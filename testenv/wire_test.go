package testenv

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

// TestWireEncodingMatchesEncodingJSON holds the simulator's hand-written media encoding byte for byte equal to
// encoding/json's (without HTML escaping), on generated media of every shape and on hand-made edge values.
func TestWireEncodingMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, m *wireMedia) {
		t.Helper()
		want := encodeJSON(m)
		if got := appendMedia(nil, m); !bytes.Equal(got, want) {
			t.Fatalf("media %s:\n got %s\nwant %s", m.ID, got, want)
		}
	}
	t.Run("generated media of every type, with and without location, caption, likes and comments", func(t *testing.T) {
		seen := map[string]bool{}
		for seed := range int64(1) {
			g := newGenerator(seed, "variety", int(seed), userPool(seed))
			created := time.Unix(1_443_556_800, 0)
			for range 500 {
				m := g.next(created)
				check(t, &m)
				seen["type "+m.Type] = true
				seen["location "+nilness(m.Location == nil)] = true
				seen["caption "+nilness(m.Caption == nil)] = true
				seen["users in photo "+nilness(len(m.UsersInPhoto) == 0)] = true
				if m.Location != nil {
					seen["location name "+nilness(m.Location.Name == nil)] = true
				}
			}
		}
		for _, want := range []string{"type image", "type video", "type carousel", "location nil", "location set",
			"caption nil", "caption set", "users in photo nil", "users in photo set", "location name nil",
			"location name set"} {
			if !seen[want] {
				t.Errorf("the generated media never had %s", want)
			}
		}
	})
	t.Run("edge values", func(t *testing.T) {
		var odd strings.Builder
		for c := range 0x80 {
			odd.WriteByte(byte(c))
		}
		odd.WriteString("\xff\xfe invalid \xe2\x80 truncated \u2028\u2029 é 😀 <>&")
		name := odd.String()
		for _, f := range []float64{0, math.Copysign(0, -1), 1e-7, -1e-7, 1e-6, 123456789e-20, 1e21, -1e21, 1e20,
			0.1, -85, 179.99999999999997, 5e-324, math.MaxFloat64} {
			m := wireMedia{
				Attribution: &struct{}{},
				Tags:        []string{name, ""},
				Type:        name,
				Location:    &wireLocation{Latitude: f, Longitude: -f, Name: &name, ID: -1},
				Comments:    wireCount[wireComment]{Count: -3},
				Likes:       wireCount[wireUser]{Data: []wireUser{{Username: name}}},
				CarouselMedia: []wireCarouselItem{{}, {Images: &wireImages{}, Videos: &wireVideos{},
					UsersInPhoto: []wireUserInPhoto{{Position: wirePosition{X: f, Y: f}}}}},
				UsersInPhoto: []wireUserInPhoto{},
				Caption:      &wireComment{Text: name},
				UserHasLiked: true,
				ID:           name,
			}
			check(t, &m)
		}
		check(t, &wireMedia{})
	})
}

func nilness(isNil bool) string {
	if isNil {
		return "nil"
	}
	return "set"
}
