package config

import (
	"slices"
	"testing"
	"time"
)

func TestChangedNamesTheSettingsThatDiffer(t *testing.T) {
	base := Defaults()
	base.Tags = []string{"a", "b"}
	base.Credentials = []Credential{{Value: secretToken}}
	tests := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"nothing changed", func(*Config) {}, nil},
		{"the tags changed", func(c *Config) { c.Tags = []string{"a", "c"} }, []string{"tags"}},
		{"the tags and two other settings changed", func(c *Config) {
			c.Tags, c.MinInterval, c.Sink = []string{"a"}, time.Minute, SinkKafka
		}, []string{"tags", "min-interval", "sink"}},
		{"the tokens changed", func(c *Config) { c.Credentials = []Credential{{Value: "other"}} }, []string{"tokens"}},
		{"the group changed", func(c *Config) { c.Group = "g" }, []string{"group"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base
			next.Tags = slices.Clone(base.Tags)
			tt.edit(&next)
			if got := Changed(&base, &next, GroupAll); !slices.Equal(got, tt.want) {
				t.Errorf("Changed = %v, want %v", got, tt.want)
			}
		})
	}
}
