package checkpoint

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkStore measures one Put and one Get of a realistic state (a 19-digit cursor, 100 recent media ids, no
// segments) over 1,000 tags, for each implementation. Bolt's Put includes an fsync; JetStreamKV's Put includes a
// round trip to an in-process nats-server over loopback TCP. "put from 16 goroutines" shows what GroupCommit buys
// when many tag loops persist at once.
func BenchmarkStore(b *testing.B) {
	st := State{Cursor: "1764475200123456789", Updated: time.Now()}
	for i := range 100 {
		st.Recent = append(st.Recent, fmt.Sprintf("%d_%d", 3500000000000000000+i, 17841400000+i))
	}
	const tags = 1000
	names := make([]string, tags)
	for i := range names {
		names[i] = fmt.Sprintf("tag_%04d", i)
	}
	for _, f := range factories() {
		b.Run(f.name, func(b *testing.B) {
			s := openForBench(b, f.name)
			ctx := context.Background()
			for _, n := range names {
				if err := s.Put(ctx, n, st); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("put", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if err := s.Put(ctx, names[i%tags], st); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
			b.Run("put from 16 goroutines", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(8) // 8 x GOMAXPROCS(2) writers
				var next atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := s.Put(ctx, names[next.Add(1)%tags], st); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			b.Run("get", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, ok, err := s.Get(ctx, names[i%tags]); err != nil || !ok {
						b.Fatal(ok, err)
					}
					i++
				}
			})
		})
	}
}

// openForBench opens the named implementation for a benchmark, closing it when the benchmark ends.
func openForBench(b *testing.B, name string) Store {
	b.Helper()
	var (
		s   Store
		err error
	)
	switch name {
	case "memory":
		s = NewMemory()
	case "bolt":
		s, err = OpenBolt(b.TempDir()+"/cursors.db", nil)
	case "bolt with group commit":
		s, err = OpenBolt(b.TempDir()+"/cursors.db", &BoltOptions{GroupCommit: 2 * time.Millisecond})
	case "jetstream kv":
		srv := runNATS(b, b.TempDir())
		s, err = NewJetStreamKV(context.Background(), connectJS(b, srv.ClientURL()), KVConfig{})
	default:
		b.Fatalf("unknown store %q", name)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}
