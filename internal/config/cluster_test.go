package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGroupSettings(t *testing.T) {
	kv := "checkpoint-store: jetstream-kv\nnats-url: nats://n1:4222,nats://n2:4222\nsink: stdout\n"
	tests := []struct {
		name    string
		file    string
		args    []string
		wantKey string // "" = loads
		check   func(t *testing.T, c *Config)
	}{
		{name: "a group member loads without tags and with every group key",
			file: kv + "tokens-file: TOKENS\ngroup: alerts\ngroup-member: pod-0\ngroup-lease: 10s\ngroup-replicas: 3\ngroup-retention: 24h\n",
			check: func(t *testing.T, c *Config) {
				if c.Group != "alerts" || c.GroupMember != "pod-0" || c.GroupLease != 10*time.Second ||
					c.GroupReplicas != 3 || c.GroupRetention != 24*time.Hour || len(c.Tags) != 0 {
					t.Errorf("got group %q member %q lease %s replicas %d retention %s tags %v", c.Group, c.GroupMember,
						c.GroupLease, c.GroupReplicas, c.GroupRetention, c.Tags)
				}
			}},
		{name: "the defaults leave the lease and replicas to the group and keep removed cursors a week",
			file: kv + "tokens-file: TOKENS\ngroup: alerts\n",
			check: func(t *testing.T, c *Config) {
				if c.GroupLease != 0 || c.GroupReplicas != 0 || c.GroupRetention != 168*time.Hour || c.GroupMember != "" {
					t.Errorf("got lease %s replicas %d retention %s member %q", c.GroupLease, c.GroupReplicas, c.GroupRetention, c.GroupMember)
				}
			}},
		{name: "a group with the bolt store is refused, naming checkpoint-store",
			file: "sink: stdout\ntokens-file: TOKENS\ngroup: alerts\n", wantKey: "checkpoint-store"},
		{name: "a group with the memory store is refused, naming checkpoint-store",
			file: "sink: stdout\ntokens-file: TOKENS\ngroup: alerts\ncheckpoint-store: memory\n", wantKey: "checkpoint-store"},
		{name: "a single instance still needs tags",
			file: kv + "tokens-file: TOKENS\n", wantKey: "tags"},
		{name: "a group name with a dot is refused", file: kv + "tokens-file: TOKENS\ngroup: a.b\n", wantKey: "group"},
		{name: "a member name with a space is refused", args: []string{"--group", "g", "--group-member", "pod 0"},
			file: kv + "tokens-file: TOKENS\n", wantKey: "group-member"},
		{name: "a lease under a second is refused", file: kv + "tokens-file: TOKENS\ngroup: g\ngroup-lease: 500ms\n", wantKey: "group-lease"},
		{name: "six replicas are refused", file: kv + "tokens-file: TOKENS\ngroup: g\ngroup-replicas: 6\n", wantKey: "group-replicas"},
		{name: "a zero retention is refused", file: kv + "tokens-file: TOKENS\ngroup: g\ngroup-retention: 0s\n", wantKey: "group-retention"},
		{name: "the status URL a member advertises loads",
			file: kv + "tokens-file: TOKENS\ngroup: g\ngroup-status-url: https://pod-0.tagstream:9464\n",
			check: func(t *testing.T, c *Config) {
				if c.GroupStatusURL != "https://pod-0.tagstream:9464" {
					t.Errorf("group-status-url %q", c.GroupStatusURL)
				}
			}},
		{name: "a status URL with a password is refused without printing it",
			file: kv + "tokens-file: TOKENS\ngroup: g\ngroup-status-url: http://ops:s3cr3tpass@pod-0:9464\n", wantKey: "group-status-url"},
		{name: "a status URL without scheme is refused", file: kv + "tokens-file: TOKENS\ngroup: g\ngroup-status-url: pod-0:9464\n",
			wantKey: "group-status-url"},
		{name: "the group comes from the environment too",
			file: kv + "tokens-file: TOKENS\n", check: func(t *testing.T, c *Config) {
				if c.Group != "fromenv" {
					t.Errorf("group %q, want fromenv", c.Group)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := strings.ReplaceAll(tc.file, "TOKENS", tokensFile(t, secretToken+"\n", 0o600))
			e := env{file: file, args: tc.args, needs: Needs{Tags: true, Tokens: true}}
			if strings.Contains(tc.name, "environment") {
				e.vars = map[string]string{"TAGSTREAM_GROUP": "fromenv"}
			}
			c, err := load(t, e)
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if tc.check != nil {
					tc.check(t, c)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Key != tc.wantKey {
				t.Fatalf("load: %v, want an error naming %s", err, tc.wantKey)
			}
			if strings.Contains(err.Error(), "s3cr3tpass") {
				t.Errorf("the error prints the password: %v", err)
			}
		})
	}
}
