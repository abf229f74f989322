package publisher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tagstream/tagstream/schema"
)

var _ Publisher = (*File)(nil)

// FileConfig configures a File publisher. The zero value is ready to use.
type FileConfig struct {
	// NoSync turns off the fsync that Publish does after writing when the destination is a regular file.
	NoSync bool
}

// File writes events as NDJSON, one structured-mode CloudEvent per line, to a writer (stdout for piping) or a
// file. Publish writes the whole batch with one Write and, for a regular file, fsyncs it before returning. A
// failed or short write (disk full, file size limit) leaves no partial line: the file is truncated back to the
// last whole line (a writer that cannot be truncated gets a newline before the next batch instead). File is
// safe for concurrent use; lines of concurrent batches never interleave.
type File struct {
	mu      sync.Mutex
	lines   *lineWriter
	path    string // the path of a File from OpenFile, checked by Ready
	syncer  interface{ Sync() error }
	closer  io.Closer
	buf     []byte
	closed  bool
	metrics *metricSet
	log     *slog.Logger
}

// NewFile returns a File publisher writing to w. When w is an *os.File that is a regular file, Publish fsyncs it
// (unless cfg.NoSync); Close does not close w. A nil logger means slog.Default(); a nil reg registers no metrics.
func NewFile(w io.Writer, cfg FileConfig, logger *slog.Logger, reg prometheus.Registerer) *File {
	if logger == nil {
		logger = slog.Default()
	}
	p := &File{lines: newLineWriter(w), metrics: NewMetrics(reg).forPublisher("file"), log: logger}
	if f, ok := w.(*os.File); ok && !cfg.NoSync {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			p.syncer = f
		}
	}
	return p
}

// OpenFile returns a File publisher appending to the file at path (created with mode 0644 if missing). Close
// closes the file.
func OpenFile(path string, cfg FileConfig, logger *slog.Logger, reg prometheus.Registerer) (*File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("publisher: open %s: %w", path, err)
	}
	p := NewFile(f, cfg, logger, reg)
	p.closer, p.path = f, path
	return p, nil
}

// Deliver is Publish; a File never dead-letters, so the indexes it returns are always nil (see Deliverer).
func (p *File) Deliver(ctx context.Context, events []*schema.Event) (deadLettered []int, err error) {
	return nil, p.Publish(ctx, events)
}

// Publish writes one line per event and, for a regular file, fsyncs. It returns ErrClosed after Close.
func (p *File) Publish(ctx context.Context, events []*schema.Event) error {
	if err := ctx.Err(); err != nil {
		return contextError(ctx, nil)
	}
	if len(events) == 0 {
		return nil
	}
	start := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	buf := p.buf[:0]
	for _, e := range events {
		buf = e.AppendJSON(buf)
		buf = append(buf, '\n')
	}
	p.buf = buf
	p.metrics.inFlight.Add(float64(len(events)))
	defer p.metrics.inFlight.Sub(float64(len(events)))
	if err := p.lines.write(buf); err != nil {
		return fmt.Errorf("publisher: write ndjson: %w", err)
	}
	if p.syncer != nil {
		if err := p.syncer.Sync(); err != nil {
			return fmt.Errorf("publisher: sync ndjson file: %w", err)
		}
	}
	n := float64(len(events))
	p.metrics.acks.Add(n)
	p.metrics.published.Add(n)
	p.metrics.seconds.Observe(time.Since(start).Seconds())
	if cap(p.buf) > 4<<20 { // do not keep a huge buffer after an unusual batch
		p.buf = nil
	}
	return nil
}

// Ready reports whether the publisher can write, without writing: it is not closed and, for a File from
// OpenFile, its path still names the open file, which is writable (permissions, a read-only or full file
// system). It returns nil, or an error wrapping ErrClosed or ErrUnavailable that names the problem.
func (p *File) Ready(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("publisher: ndjson file: %w", ErrClosed)
	}
	if p.path == "" {
		return nil
	}
	f, _ := p.closer.(*os.File)
	if err := fileWritable(f, p.path); err != nil {
		return fmt.Errorf("publisher: ndjson file %s: %w: %w", p.path, ErrUnavailable, err)
	}
	return nil
}

// fileWritable reports why f, opened at path, cannot take more writes: path names another file or none, or
// (where the platform can tell, see fsWritable) the process may not write to it, or its file system is
// read-only or full.
func fileWritable(f *os.File, path string) error {
	open, err := f.Stat()
	if err != nil {
		return err
	}
	named, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !os.SameFile(open, named) {
		return errors.New("the path names another file now (moved or replaced)")
	}
	return fsWritable(f, path)
}

// Close flushes (fsync) and, for a File from OpenFile, closes the file.
func (p *File) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	var err error
	if p.syncer != nil {
		err = p.syncer.Sync()
	}
	if p.closer != nil {
		if cerr := p.closer.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("publisher: close ndjson file: %w", err)
	}
	return nil
}
