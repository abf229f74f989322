package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runNATS starts an in-process nats-server with JetStream on a free port and a store in dir.
func runNATS(t testing.TB, dir string) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not become ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connectJS(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return js
}

func openTestKV(t *testing.T) Store {
	t.Helper()
	srv := runNATS(t, t.TempDir())
	s, err := NewJetStreamKV(context.Background(), connectJS(t, srv.ClientURL()), KVConfig{})
	if err != nil {
		t.Fatalf("NewJetStreamKV: %v", err)
	}
	return s
}

// openSharedKV opens two stores on one bucket, each on its own connection, as two tagstream instances would.
func openSharedKV(t *testing.T) (a, b Store) {
	t.Helper()
	srv := runNATS(t, t.TempDir())
	open := func(cfg KVConfig) Store {
		s, err := NewJetStreamKV(context.Background(), connectJS(t, srv.ClientURL()), cfg)
		if err != nil {
			t.Fatalf("NewJetStreamKV: %v", err)
		}
		return s
	}
	return open(KVConfig{}), open(KVConfig{NoCreate: true})
}

func TestJetStreamKV(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(t *testing.T, srv *server.Server, js jetstream.JetStream)
	}{
		{"the zero config creates the default bucket with file storage and one replica", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			s, err := NewJetStreamKV(ctx, js, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			if s.Bucket() != DefaultKVBucket {
				t.Fatalf("Bucket = %q", s.Bucket())
			}
			kv, err := js.KeyValue(ctx, DefaultKVBucket)
			if err != nil {
				t.Fatalf("bucket not created: %v", err)
			}
			st, err := kv.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
			if info.Config.Storage != jetstream.FileStorage || info.Config.Replicas != 1 || st.History() != 1 {
				t.Fatalf("bucket config: storage %v replicas %d history %d", info.Config.Storage, info.Config.Replicas, st.History())
			}
		}},
		{"a configured bucket, storage and history are used", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			if _, err := NewJetStreamKV(ctx, js, KVConfig{Bucket: "custom_cursors", Storage: jetstream.MemoryStorage, History: 5}); err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(ctx, "custom_cursors")
			if err != nil {
				t.Fatal(err)
			}
			st, _ := kv.Status(ctx)
			if st.BackingStore() != "JetStream" || st.History() != 5 ||
				st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Storage != jetstream.MemoryStorage {
				t.Fatalf("bucket status %+v", st)
			}
		}},
		{"NoCreate fails on a missing bucket", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			_, err := NewJetStreamKV(ctx, js, KVConfig{Bucket: "absent", NoCreate: true})
			if !errors.Is(err, jetstream.ErrBucketNotFound) {
				t.Fatalf("err = %v; want ErrBucketNotFound", err)
			}
		}},
		{"invalid settings are refused up front", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			for _, cfg := range []KVConfig{{Replicas: 6}, {Replicas: -1}, {History: 65}, {Bucket: "has.dot"}} {
				if _, err := NewJetStreamKV(ctx, js, cfg); err == nil {
					t.Errorf("config %+v accepted", cfg)
				}
			}
			if _, err := NewJetStreamKV(ctx, nil, KVConfig{}); err == nil {
				t.Error("nil JetStream accepted")
			}
		}},
		{"two stores on one bucket see each other's states", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			a, err := NewJetStreamKV(ctx, js, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := NewJetStreamKV(ctx, js, KVConfig{NoCreate: true})
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, a, "shared_tag", sampleState(7))
			got, ok := mustGet(t, b, "shared_tag")
			if !ok || !sameState(got, sampleState(7)) {
				t.Fatalf("Get via second store = %+v, %v", got, ok)
			}
		}},
		{"every key written is a valid KV key that decodes back to its tag", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			s, err := NewJetStreamKV(ctx, js, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			for i, tag := range unusualTags() {
				mustPut(t, s, tag, sampleState(i))
			}
			kv, _ := js.KeyValue(ctx, DefaultKVBucket)
			keys, err := kv.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, tag := range unusualTags() {
				want = append(want, KVKey(tag))
			}
			slices.Sort(keys)
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Fatalf("keys = %q\nwant %q", keys, want)
			}
		}},
		{"keys not written by the store are ignored by Tags", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			s, err := NewJetStreamKV(ctx, js, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, s, "real", sampleState(1))
			kv, _ := js.KeyValue(ctx, DefaultKVBucket)
			// A key that is no base64url, and the key of a tag that only the old, looser tag rule accepted.
			for _, k := range []string{"foreign.key", KVKey("dotted.tag")} {
				if _, err := kv.Put(ctx, k, []byte(`{"v":1}`)); err != nil {
					t.Fatal(err)
				}
			}
			if tags := mustTags(t, s); !slices.Equal(tags, []string{"real"}) {
				t.Fatalf("Tags = %q; want [real]", tags)
			}
		}},
		{"a value that is not a state is reported as corrupt", func(t *testing.T, _ *server.Server, js jetstream.JetStream) {
			s, err := NewJetStreamKV(ctx, js, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			kv, _ := js.KeyValue(ctx, DefaultKVBucket)
			if _, err := kv.Put(ctx, KVKey("garbled"), []byte("<html>")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := s.Get(ctx, "garbled"); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Get = %v; want ErrCorrupt", err)
			}
		}},
		{"states survive a server restart on the same store directory", func(t *testing.T, srv *server.Server, js jetstream.JetStream) {
			s, err := NewJetStreamKV(ctx, js, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			mustPut(t, s, "durable", sampleState(9))
			dir := srv.JetStreamConfig().StoreDir
			srv.Shutdown()
			srv.WaitForShutdown()
			srv2 := runNATS(t, dir[:len(dir)-len("/jetstream")])
			s2, err := NewJetStreamKV(ctx, connectJS(t, srv2.ClientURL()), KVConfig{NoCreate: true})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := mustGet(t, s2, "durable")
			if !ok || !sameState(got, sampleState(9)) {
				t.Fatalf("after restart Get = %+v, %v", got, ok)
			}
		}},
		{"a stopped server yields an error, not a hang", func(t *testing.T, srv *server.Server, js jetstream.JetStream) {
			s, err := NewJetStreamKV(ctx, js, KVConfig{})
			if err != nil {
				t.Fatal(err)
			}
			srv.Shutdown()
			srv.WaitForShutdown()
			cctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond) // Put must return when cctx ends
			defer cancel()
			if err := s.Put(cctx, "t", State{}); err == nil {
				t.Fatal("Put succeeded with the server down")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := runNATS(t, t.TempDir())
			tc.run(t, srv, connectJS(t, srv.ClientURL()))
		})
	}
}

func TestKVKeyIsReversibleAndValid(t *testing.T) {
	valid := func(k string) bool {
		if k == "" || k[0] == '.' || k[len(k)-1] == '.' {
			return false
		}
		for _, r := range k {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '=', r == '/', r == '.':
			default:
				return false
			}
		}
		return true
	}
	for _, tag := range unusualTags() {
		t.Run(fmt.Sprintf("tag %.20q maps to a valid key", tag), func(t *testing.T) {
			k := KVKey(tag)
			if !valid(k) {
				t.Fatalf("KVKey(%q) = %q is not a valid KV key", tag, k)
			}
		})
	}
}
