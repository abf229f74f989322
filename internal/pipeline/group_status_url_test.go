package pipeline

import (
	"errors"
	"testing"
)

func TestGroupStatusURL(t *testing.T) {
	host := func() (string, error) { return "host-a", nil }
	noHost := func() (string, error) { return "", errors.New("no host name") }
	for _, tc := range []struct {
		name, setting, bound string
		hostname             func() (string, error)
		want                 string
	}{
		{"group-status-url wins", "https://pod-0.tagstream:9464", "0.0.0.0:9464", host, "https://pod-0.tagstream:9464"},
		{"no metrics-addr advertises none", "", "", host, ""},
		{"a listener on every interface advertises the host name", "", "0.0.0.0:9464", host, "http://host-a:9464"},
		{"a listener on every IPv6 interface advertises the host name", "", "[::]:9464", host, "http://host-a:9464"},
		{"a listener on loopback advertises loopback: only it answers", "", "127.0.0.1:41234", host, "http://127.0.0.1:41234"},
		{"a listener on one address advertises that address", "", "[fd00::5]:9464", host, "http://[fd00::5]:9464"},
		{"no host name advertises none", "", "0.0.0.0:9464", noHost, ""},
		{"a host name that makes no URL advertises none", "", "0.0.0.0:9464", func() (string, error) { return "a b", nil }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupStatusURL(tc.setting, tc.bound, tc.hostname); got != tc.want {
				t.Errorf("groupStatusURL(%q, %q) = %q, want %q", tc.setting, tc.bound, got, tc.want)
			}
		})
	}
}
