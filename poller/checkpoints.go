package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tagstream/tagstream/internal/redact"
	"github.com/tagstream/tagstream/poller/checkpoint"
)

// ErrCheckpointWrites is wrapped by the error of Poller.Ready while the checkpoint store fails writes.
var ErrCheckpointWrites = errors.New("poller: the checkpoint store fails writes")

// commit persists st as tag's checkpoint and records how the store fared.
func (p *Poller) commit(ctx context.Context, tag string, st checkpoint.State) error {
	st.Updated = p.cfg.Clock()
	if err := p.store.Put(ctx, tag, st); err != nil {
		// A conflict is another instance owning the tag (see Config.OnConflict), not a store that fails.
		if ctx.Err() == nil && !errors.Is(err, checkpoint.ErrConflict) {
			p.writes.failure(err)
		}
		return fmt.Errorf("poller: tag %q: write checkpoint: %w", tag, err)
	}
	p.writes.success()
	return nil
}

// storeHealth follows whether checkpoint writes succeed. A failure episode starts with the first failed write
// after a success and ends with the next successful one; it is logged once at WARN when it starts and once at INFO
// when it ends, counted in tagstream_checkpoint_write_failures_total (every failed write) and shown by
// tagstream_checkpoint_store_failing and Poller.Ready.
type storeHealth struct {
	mu      sync.Mutex
	since   time.Duration // start of the current failure episode (monotonic clock), 0 when none
	fails   int
	lastErr string
	clk     clock
	red     *redact.Redactor
	log     *slog.Logger
	m       *metrics
}

func (h *storeHealth) failure(err error) {
	h.m.checkpointWriteFailures.Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fails++
	h.lastErr = h.red.String(err.Error())
	if h.since == 0 {
		h.since = h.clk.mono()
		h.m.checkpointStoreFailing.Set(1)
		h.log.Warn("checkpoint writes fail: acknowledged batches are kept in memory and their writes retried",
			"err", h.lastErr)
	}
}

func (h *storeHealth) success() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since == 0 {
		return
	}
	h.log.Info("checkpoint writes succeed again", "failed_writes", h.fails,
		"failing_for", (h.clk.mono() - h.since).Round(time.Millisecond))
	h.since, h.fails, h.lastErr = 0, 0, ""
	h.m.checkpointStoreFailing.Set(0)
}

// ready returns nil unless the last write failed, and then an error wrapping ErrCheckpointWrites.
func (h *storeHealth) ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since == 0 {
		return nil
	}
	return fmt.Errorf("%w since %s (%d failed writes; last: %s)", ErrCheckpointWrites,
		h.clk.wallAt(h.since).UTC().Format(time.RFC3339), h.fails, h.lastErr)
}
