package poller

import (
	"context"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/internal/testkit"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

// conflictsExported returns tagstream_checkpoint_conflicts_total by write label, as reg exports it.
func conflictsExported(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "tagstream_checkpoint_conflicts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "write" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func TestCheckpointConflictsAreCounted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// polled: the poller polls "taken" from the start (no cursor stored); else a cursor is stored for Assign
		// to claim.
		polled bool
		// run makes the poller meet conflicts on tag "taken", whose Puts the store refuses.
		run  func(t *testing.T, p *Poller, lost <-chan string)
		want map[string]float64
	}{
		{"a poll whose commit is refused counts one poll conflict", true, func(t *testing.T, p *Poller, lost <-chan string) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			testkit.Receive(t, lost, assignWait, "the tag dropped on its conflict")
			cancel()
			if err := testkit.Receive(t, done, assignWait, "Run to return"); err != nil {
				t.Errorf("Run: %v", err)
			}
		}, map[string]float64{writePoll: 1, writeClaim: 0}},
		{"a claim write that keeps conflicting counts each refusal", false, func(t *testing.T, p *Poller, lost <-chan string) {
			if err := p.Assign(t.Context(), Assignment{Tags: []string{"taken"}, Claim: true}); err != nil {
				t.Fatalf("Assign: %v", err)
			}
			testkit.Receive(t, lost, assignWait, "the tag given up on its conflict")
		}, map[string]float64{writePoll: 0, writeClaim: claimTries}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSimWithTags(t, []string{"tok-a"}, []string{"taken"})
			store := newHookStore(t)
			var tags []string
			if tc.polled {
				tags = []string{"taken"}
			} else if err := store.Store.Put(t.Context(), "taken", checkpoint.State{Cursor: "1"}); err != nil {
				t.Fatal(err)
			}
			store.set(func(h *hookStore) { h.conflict = "taken" })
			cfg := testConfig(srv, []string{"tok-a"}, tags)
			lost := make(chan string, 1)
			cfg.OnConflict = func(tag string) {
				select {
				case lost <- tag:
				default:
				}
			}
			reg := prometheus.NewRegistry()
			p, err := New(cfg, &memPublisher{}, store, slog.New(slog.DiscardHandler), reg)
			if err != nil {
				t.Fatal(err)
			}
			if got := conflictsExported(t, reg); got[writePoll] != 0 || got[writeClaim] != 0 || len(got) != 2 {
				t.Fatalf("before any conflict: %v, want both writes at 0", got)
			}
			tc.run(t, p, lost)
			got := conflictsExported(t, reg)
			for w, n := range tc.want {
				if got[w] != n {
					t.Errorf("tagstream_checkpoint_conflicts_total{write=%q} = %v, want %v", w, got[w], n)
				}
			}
		})
	}
}
